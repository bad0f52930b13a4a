// Command compose loads deploy/compose.yaml with compose-go, the loader `docker compose` itself
// uses (schema validation, interpolation, references between services, networks and volumes), then
// checks what the walk-through promises: secrets only in env files, two replicas behind one
// published port, a migration before the replicas, a read-only file system.
//
//	go run ./compose ../compose.yaml ../../docs/configuration.md
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: compose COMPOSE_FILE CONFIGURATION_MD")
		os.Exit(2)
	}
	problems, err := check(os.Args[1], os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, "compose:", p)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
	fmt.Println("compose: ok", os.Args[1])
}

// secretNames reads the variables docs/configuration.md marks as secret.
func secretNames(doc string) (map[string]bool, error) {
	text, err := os.ReadFile(doc)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Z0-9_]+)` \\(\\*\\*secret\\*\\*\\)").FindAllStringSubmatch(string(text), -1) {
		names[m[1]] = true
	}
	if len(names) < 5 {
		return nil, fmt.Errorf("%s: found only %d secret variables; has its table format changed?", doc, len(names))
	}
	return names, nil
}

func check(file, doc string) ([]string, error) {
	secrets, err := secretNames(doc)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(abs)
	details, err := loader.LoadConfigFiles(context.Background(), []string{abs}, dir)
	if err != nil {
		return nil, err
	}
	// The env files hold the secrets and exist only on the machine that runs the stack; their
	// .example twins are checked below instead.
	project, err := loader.LoadWithContext(context.Background(), *details, func(o *loader.Options) {
		o.SkipResolveEnvironment = true
		o.ResolvePaths = true
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	published := []string{}
	for name, s := range project.Services {
		if len(s.Ports) > 0 {
			published = append(published, name)
		}
		for key := range s.Environment {
			if secrets[key] {
				add("service %s sets %s in compose.yaml: secrets belong in an env file", name, key)
			}
		}
		for _, ef := range s.EnvFiles {
			checkEnvExample(ef, secrets, add)
		}
		if s.Image != "nexus:local" {
			continue
		}
		if !s.ReadOnly {
			add("service %s: read_only is not set", name)
		}
		if name != "migrate" {
			if d, ok := s.DependsOn["migrate"]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
				add("service %s does not wait for migrate to complete", name)
			}
		}
	}
	if len(published) != 1 || published[0] != "proxy" {
		add("only the proxy should publish a port, got %v", published)
	}
	nexus, ok := project.Services["nexus"]
	if !ok || nexus.Deploy == nil || nexus.Deploy.Replicas == nil || *nexus.Deploy.Replicas < 2 {
		add("service nexus should run at least two replicas")
	}
	if _, ok := project.Services["worker"]; !ok {
		add("no worker service")
	}
	return problems, nil
}

// checkEnvExample requires `<env file>.example` beside every env file, parseable, and naming the
// keys the broker needs in production.
func checkEnvExample(ef types.EnvFile, secrets map[string]bool, add func(string, ...any)) {
	example := ef.Path + ".example"
	values, err := dotenv.GetEnvFromFile(map[string]string{}, []string{example})
	if err != nil {
		add("%s: %v", example, err)
		return
	}
	if !strings.HasSuffix(ef.Path, "nexus.env") {
		return
	}
	for _, key := range []string{"ENCRYPTION_KEY", "STATE_KEY", "USER_SECRETS_KEY", "DATABASE_URL", "BASE_URL", "REDIS_URL"} {
		if _, ok := values[key]; !ok {
			add("%s does not name %s", example, key)
		}
	}
	for key, value := range values {
		if secrets[key] && value != "" && !strings.Contains(value, "CHANGE_ME") && !strings.HasPrefix(value, "redis://redis:") {
			add("%s: %s has a value; an example holds no secret", example, key)
		}
	}
}
