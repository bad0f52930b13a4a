package nexus

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// The headers strategy in gRPC metadata: every header, lower-cased, templates filled (the HTTP
// form is checked by the shared vectors in strategy_vectors_test.go).
func TestHeadersStrategyInGRPCMetadata(t *testing.T) {
	tk := &Token{
		ConnectionID: "c-1",
		Strategy:     Strategy{Type: StrategyHeaders, Config: map[string]string{"DD-API-KEY": "{api_key}", "X-App": "app={application_key}"}},
		Credentials:  map[string]string{"api_key": "k-1", "application_key": "a-1"},
	}
	md, err := metadataFor(tk)
	if err != nil || !reflect.DeepEqual(md, map[string]string{"dd-api-key": "k-1", "x-app": "app=a-1"}) {
		t.Fatalf("metadata %v, %v", md, err)
	}
	delete(tk.Credentials, "application_key")
	if _, err := metadataFor(tk); !errors.Is(err, ErrStrategy) || !strings.Contains(err.Error(), "application_key") || strings.Contains(err.Error(), "k-1") {
		t.Fatalf("a missing field: %v", err)
	}
}
