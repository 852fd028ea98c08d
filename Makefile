# Tributary. `make test` installs the test peers that are missing, then
# vets and runs every test with the race detector.
GO ?= go

.PHONY: all build test peers vet demo clips clean

all: build

build:
	$(GO) build ./...

## test: install missing test peers, then go vet and go test -race
test: peers
	$(GO) vet ./...
	$(GO) test -race -timeout 15m ./...

## peers: install the real programs the tests run against (ffmpeg, GStreamer,
## and versitygw, an S3 gateway built into .tools/)
peers:
	GO="$(GO)" ./scripts/install-peers.sh

vet:
	$(GO) vet ./...

## demo: synthetic cameras, the agent and a local archive
demo:
	$(GO) run ./cmd/tributary demo

## clips: regenerate the test clips in testdata (needs ffmpeg)
clips:
	./testdata/gen-clips.sh

clean:
	rm -rf tributary-data
