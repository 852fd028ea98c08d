// Package inference hands fragments to machine-learning model endpoints and
// keeps what they answer next to the video.
//
// A Hook names a model and an endpoint: a SageMaker-compatible one
// (POST {endpoint}/invocations, or a full InvokeEndpoint URL signed with
// AWS Signature Version 4) or a webhook that gets a JSON notice with the
// fragment's metadata and a signed URL to fetch it. Its payload is the
// fragment itself (fMP4 init segment + fragment, or MKV), or its first
// keyframe (an Annex-B access unit, or a JPEG through ffmpeg), for every
// fragment, every Nth, or at most one per interval.
//
// An Invoker makes one request with retries (exponential backoff with
// jitter on 5xx, 429 and timeouts), a circuit breaker per endpoint and an
// idempotency key (stream, fragment number and model) sent as a header, so
// endpoints can drop repeats. What the endpoint answers is stored as a
// Result at streams/{stream}/results/{model}/YYYY/MM/DD/HH/{number}.json;
// a fragment that fails past its retries gets a DeadLetter at
// streams/{stream}/deadletters/{model}/…: every sampled fragment ends with
// one or the other, never silently skipped.
//
// Hooks run in two places. In the agent, a Dispatcher takes fragments as
// they close through a bounded queue that never blocks ingest (drops are
// counted). From the archive, a Consumer reads the fragments of the
// streams in its shards, per stream in order, checkpointing as it goes.
package inference
