#!/usr/bin/env bash
# Regenerates nexusv1/ from the published proto/nexus/v1/nexus.proto. Needs protoc (Debian
# protobuf-compiler) and the Go plugins:
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
#   go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
module=github.com/nexus-broker/nexus/apps/broker/test/grpc-go
map="Mnexus/v1/nexus.proto=$module/nexusv1"
PATH="$PATH:$(go env GOPATH)/bin"
protoc -I "$root/proto" \
  --go_out="$here" --go_opt=module="$module" --go_opt="$map" \
  --go-grpc_out="$here" --go-grpc_opt=module="$module" --go-grpc_opt="$map" \
  "$root/proto/nexus/v1/nexus.proto"
