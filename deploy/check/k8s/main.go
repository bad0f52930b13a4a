// Command k8s validates the output of `helm template` (on stdin) without a cluster: every document
// is decoded strictly into the Kubernetes API types (client-go's scheme: an unknown kind, an
// unknown or duplicated field or a wrong type fails), then checked against what the chart promises:
// non-root pods with a read-only root file system and resources, probes on /health and /ready,
// secrets only from Secrets (or Transit ciphertexts), Services and PodDisruptionBudgets that select
// pods of a Deployment. The JSON schemas kubeconform would use cannot be downloaded here.
//
//	helm template nexus ../helm/nexus -f VALUES | go run ./k8s
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
)

// secretVariables may reach a container only through a Secret, except the Transit-wrapped keys.
var secretVariables = map[string]bool{
	"DATABASE_URL": true, "REDIS_URL": true, "ENCRYPTION_KEY": true, "ENCRYPTION_KEYS": true,
	"STATE_KEY": true, "USER_SECRETS_KEY": true, "USER_SECRETS_KEYS": true, "API_KEY": true,
	"API_KEYS": true, "VAULT_TOKEN": true, "VAULT_SECRET_ID": true, "BACKEND_AUTH_TOKEN": true,
}

var wrappedKeys = map[string]bool{"ENCRYPTION_KEY": true, "STATE_KEY": true, "USER_SECRETS_KEY": true}

func main() {
	problems, count, err := check(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8s:", err)
		os.Exit(1)
	}
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, "k8s:", p)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
	fmt.Printf("k8s: ok, %d objects\n", count)
}

func check(in io.Reader) ([]string, int, error) {
	decoder := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
		json.SerializerOptions{Yaml: true, Strict: true})
	reader := utilyaml.NewYAMLReader(bufio.NewReader(in))
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	var deployments []*appsv1.Deployment
	var selectors []struct {
		what     string
		selector labels.Selector
	}
	count := 0
	for {
		doc, err := reader.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, err
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, gvk, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			add("%s", err)
			continue
		}
		count++
		var pod *corev1.PodSpec
		name := gvk.Kind
		switch o := obj.(type) {
		case *appsv1.Deployment:
			name += "/" + o.Name
			deployments = append(deployments, o)
			pod = &o.Spec.Template.Spec
		case *batchv1.Job:
			name += "/" + o.Name
			pod = &o.Spec.Template.Spec
		case *corev1.Service:
			selectors = append(selectors, struct {
				what     string
				selector labels.Selector
			}{"Service/" + o.Name, labels.SelectorFromSet(o.Spec.Selector)})
		case *policyv1.PodDisruptionBudget:
			s, err := metaSelector(o)
			if err != nil {
				add("PodDisruptionBudget/%s: %v", o.Name, err)
				continue
			}
			selectors = append(selectors, struct {
				what     string
				selector labels.Selector
			}{"PodDisruptionBudget/" + o.Name, s})
		}
		if pod != nil {
			checkPod(name, pod, add)
		}
	}
	for _, s := range selectors {
		matched := 0
		for _, d := range deployments {
			if s.selector.Matches(labels.Set(d.Spec.Template.Labels)) {
				matched++
			}
		}
		if matched != 1 {
			add("%s selects the pods of %d Deployments, not 1", s.what, matched)
		}
	}
	return problems, count, nil
}

func metaSelector(p *policyv1.PodDisruptionBudget) (labels.Selector, error) {
	if p.Spec.Selector == nil {
		return nil, fmt.Errorf("no selector")
	}
	return labels.SelectorFromSet(p.Spec.Selector.MatchLabels), nil
}

func checkPod(name string, pod *corev1.PodSpec, add func(string, ...any)) {
	sc := pod.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		add("%s: the pod does not run as a non-root user", name)
	}
	for _, c := range pod.Containers {
		where := name + " container " + c.Name
		csc := c.SecurityContext
		if csc == nil || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
			add("%s: root file system is not read-only", where)
		}
		if csc == nil || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
			add("%s: privilege escalation is allowed", where)
		}
		if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			add("%s: no memory request or limit", where)
		}
		transit := false
		for _, e := range c.Env {
			if e.Name == "KEY_PROVIDER" && e.Value == "transit" {
				transit = true
			}
		}
		for _, e := range c.Env {
			if secretVariables[e.Name] && e.Value != "" && !(transit && wrappedKeys[e.Name] && strings.HasPrefix(e.Value, "vault:")) {
				add("%s: %s is a literal value, not from a Secret", where, e.Name)
			}
		}
		if len(c.Ports) == 0 {
			continue
		}
		if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/health" {
			add("%s: liveness probe is not GET /health", where)
		}
		// The gateway role serves only the public surface, which has /health but not /ready.
		want := "/ready"
		if len(c.Args) >= 3 && c.Args[1] == "--role" && c.Args[2] == "gateway" {
			want = "/health"
		}
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != want {
			add("%s: readiness probe is not GET %s", where, want)
		}
	}
}

// stripComments drops comment-only lines, so that a document holding only `# Source:` is skipped.
func stripComments(doc []byte) []byte {
	var out bytes.Buffer
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out.Write(line)
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}
