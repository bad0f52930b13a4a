// Package original is issue #17's Go check: an agent built with the original Go gateway's generated
// nexus.v1 client (originalv1, generated from apps/broker/test/fixtures/original-nexus.proto, the v1
// contract's table) runs its usual loop against the broker: RequestConnection, the user's consent,
// CheckConnection until "active", GetToken, RefreshConnection. Before the fix the loop never ended
// (the connection id arrived as the status) and GetToken failed with "cannot parse invalid
// wire-format data". It is its own package so that the two generated nexus.v1 packages never share
// a protobuf registry. run.sh starts the broker side.
package original

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	nexuspb "github.com/nexus-broker/nexus/apps/broker/test/grpc-go/originalv1"
)

const returnURL = "http://localhost:3000/connected"

var uuid = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

type fixture struct {
	GrpcAddress string `json:"grpc_address"`
	HelperURL   string `json:"helper_url"`
	AdminKey    string `json:"admin_key"`
}

func helper(t *testing.T, fx fixture, path string, body any) map[string]any {
	t.Helper()
	method, payload := http.MethodGet, []byte(nil)
	if body != nil {
		method = http.MethodPost
		payload, _ = json.Marshal(body)
	}
	req, _ := http.NewRequest(method, fx.HelperURL+path, bytes.NewReader(payload))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("helper %s: %v", path, err)
		return nil
	}
	defer res.Body.Close()
	out := map[string]any{}
	json.NewDecoder(res.Body).Decode(&out)
	return out
}

func TestOriginalClientLoop(t *testing.T) {
	raw := os.Getenv("NEXUS_GRPC_FIXTURE")
	if raw == "" {
		t.Skip("NEXUS_GRPC_FIXTURE is not set: run apps/broker/test/grpc-go/run.sh")
	}
	var fx fixture
	if err := json.Unmarshal([]byte(raw), &fx); err != nil {
		t.Fatalf("NEXUS_GRPC_FIXTURE: %v", err)
	}
	conn, err := grpc.NewClient(fx.GrpcAddress, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := nexuspb.NewNexusServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The original gateway had no caller authentication; Nexus needs one, sent as metadata.
	ctx = metadata.AppendToOutgoingContext(ctx, "x-api-key", fx.AdminKey)

	// No scopes: the provider's default scopes. The original's action field is accepted.
	started, err := client.RequestConnection(ctx, &nexuspb.RequestConnectionRequest{
		UserId: "go-original-user", ProviderName: "idp-basic", ReturnUrl: returnURL, Action: "connect",
	})
	if err != nil {
		t.Fatalf("RequestConnection: %v", err)
	}
	id := started.GetConnectionId()
	if !uuid.MatchString(id) || !uuid.MatchString(started.GetProviderId()) || started.GetState() == "" ||
		!slices.Equal(started.GetScopes(), []string{"api:read"}) {
		t.Fatalf("RequestConnection answered %v", started)
	}

	checked, err := client.CheckConnection(ctx, &nexuspb.CheckConnectionRequest{ConnectionId: id})
	if err != nil || checked.GetStatus() != "pending" {
		t.Fatalf("CheckConnection before consent: %v %v", checked, err)
	}

	// The user consents in their browser while the agent polls, as agents of the original do.
	consented := make(chan map[string]any, 1)
	go func() { consented <- helper(t, fx, "/consent", map[string]string{"auth_url": started.GetAuthUrl()}) }()
	for polls := 0; ; polls++ {
		checked, err = client.CheckConnection(ctx, &nexuspb.CheckConnectionRequest{ConnectionId: id})
		if err != nil {
			t.Fatalf("CheckConnection: %v", err)
		}
		if checked.GetStatus() == "active" {
			break
		}
		if checked.GetStatus() != "pending" || polls > 400 {
			t.Fatalf("CheckConnection answered %q after %d polls", checked.GetStatus(), polls)
		}
		time.Sleep(25 * time.Millisecond)
	}
	if back := <-consented; back["status"] != "success" || back["connection_id"] != id {
		t.Fatalf("consent: %v", back)
	}

	token, err := client.GetToken(ctx, &nexuspb.GetTokenRequest{ConnectionId: id})
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	got := token.GetToken().AsMap()
	rest := helper(t, fx, "/rest-token/"+id, nil)
	if got["access_token"] == nil || got["access_token"] != rest["access_token"] || got["connection_id"] != id {
		t.Fatalf("GetToken %v, REST %v", got, rest)
	}
	if len(got) != len(rest) {
		t.Fatalf("GetToken has %d fields, REST %d: %v vs %v", len(got), len(rest), got, rest)
	}
	if _, has := got["refresh_token"]; has {
		t.Fatal("a refresh token left the broker")
	}

	helper(t, fx, "/advance", map[string]int{"ms": 3000})
	refreshed, err := client.RefreshConnection(ctx, &nexuspb.RefreshConnectionRequest{ConnectionId: id})
	if err != nil {
		t.Fatalf("RefreshConnection: %v", err)
	}
	fresh := refreshed.GetToken().AsMap()
	if fresh["access_token"] == nil || fresh["access_token"] == got["access_token"] {
		t.Fatalf("RefreshConnection answered %v", fresh)
	}
}
