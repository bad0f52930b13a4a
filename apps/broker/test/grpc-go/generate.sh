#!/usr/bin/env bash
# Regenerates the checked-in Go code of the Go client test:
#   nexusv1/     from the published proto/nexus/v1/nexus.proto (google/api from proto/ too);
#   originalv1/  from ../fixtures/original-nexus.proto, the original gateway's service as the v1
#                contract records it: the client an agent written for the original has.
# Needs protoc with Google's well-known .proto files (Debian protobuf-compiler and libprotobuf-dev)
# and the Go plugins:
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
#   go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
module=github.com/nexus-broker/nexus/apps/broker/test/grpc-go
PATH="$PATH:$(go env GOPATH)/bin"

# generate <include dir> <file> <package dir>
generate() {
  local map="M$2=$module/$3"
  protoc -I "$1" -I "$root/proto" \
    --go_out="$here" --go_opt=module="$module" --go_opt="$map" \
    --go-grpc_out="$here" --go-grpc_opt=module="$module" --go-grpc_opt="$map" \
    "$1/$2"
}

generate "$root/proto" nexus/v1/nexus.proto nexusv1
generate "$here/../fixtures" original-nexus.proto originalv1
