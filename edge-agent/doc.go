// Package edgeagent is the agent that runs on a camera gateway: one
// supervised pipeline per configured stream (source, cutter, fMP4 writer,
// archive), per-stream status, Prometheus metrics and the HTTP endpoints
// /v1/status, /healthz, /readyz and /metrics.
package edgeagent
