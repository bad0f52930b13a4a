package nexus_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"

	nexus "github.com/nexus-broker/nexus/sdks/go"
)

// The README's quick start. (No Output comment: compiled by go vet and go test, not run.)
func Example() {
	ctx := context.Background()

	// NEXUS_URL, NEXUS_CLIENT_ID and NEXUS_CLIENT_SECRET come from the environment.
	client, err := nexus.New()
	if err != nil {
		log.Fatal(err)
	}

	// 1. Connect a user's account: send them to AuthURL, wait until they consented.
	started, err := client.RequestConnection(ctx, nexus.RequestConnectionInput{
		UserID:       "user-42",
		ProviderName: "github",
		ReturnURL:    "https://app.example.com/connected",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("open this URL:", started.AuthURL)
	if _, err := client.WaitForActive(ctx, started.ConnectionID, 0); err != nil {
		log.Fatal(err)
	}

	// 2. Call the provider's API: the transport applies the credential (any strategy),
	// caches it, refreshes it before it expires, and retries once after a 401.
	api := client.NewTransport(started.ConnectionID).HTTPClient()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://api.github.com/user", nil)
	resp, err := api.Do(req)
	if errors.Is(err, nexus.ErrAttentionRequired) {
		log.Fatal("the user must reconnect their account")
	} else if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Status, len(body))
}

// Resolve nexus-secret:NAME references in a config object.
func ExampleClient_ResolveSecrets() {
	ctx := context.Background()
	client, err := nexus.New(nexus.WithBaseURL("http://localhost:8080"), nexus.WithClientCredentials("my-agent", "nxs_..."))
	if err != nil {
		log.Fatal(err)
	}
	config := map[string]any{
		"database": map[string]any{"host": "db.internal", "password": "nexus-secret:db-password"},
	}
	resolved, err := client.ResolveSecrets(ctx, config, nexus.ForUser("user-42"))
	if err != nil {
		log.Fatal(err)
	}
	_ = resolved["database"].(map[string]any)["password"]
}
