package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	trunksv2beta1 "sipreg.dev/gen/pb/fonoster/routr/connect/trunks/v2beta1"
	registryv1 "sipreg.dev/gen/pb/sipreg/registry/v1"

	"sipreg.dev/tools/fakerequester"
)

// deployPromQLKeywords are the words of PromQL that are not metric names.
var deployPromQLKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "by": true, "without": true, "on": true, "ignoring": true,
	"group_left": true, "group_right": true, "bool": true, "offset": true, "atan2": true, "inf": true, "nan": true,
	"sum": true, "min": true, "max": true, "avg": true, "count": true, "stddev": true, "stdvar": true, "topk": true,
	"bottomk": true, "quantile": true, "count_values": true, "group": true, "limitk": true, "limit_ratio": true,
}

// deployLabelLists are the keywords followed by a list of label names.
var deployLabelLists = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// deployMetricNames returns the metric names a PromQL expression (or a Grafana query
// with $variables) selects: identifiers that are neither keywords, functions, label
// names (in {...} or after by, on, ...), durations, strings nor variables.
func deployMetricNames(expr string) []string {
	var names []string
	isStart := func(c byte) bool { return c == '_' || c == ':' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
	isPart := func(c byte) bool { return isStart(c) || (c >= '0' && c <= '9') }
	skipTo := func(i int, closer byte) int { // past the closer, skipping quoted strings
		for ; i < len(expr) && expr[i] != closer; i++ {
			if q := expr[i]; q == '"' || q == '\'' || q == '`' {
				for i++; i < len(expr) && expr[i] != q; i++ {
					if expr[i] == '\\' && q != '`' {
						i++
					}
				}
			}
		}
		return i + 1
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipTo(i+1, c)
		case c == '{':
			i = skipTo(i+1, '}')
		case c == '[':
			i = skipTo(i+1, ']')
		case c == '$':
			i++
			for i < len(expr) && (isPart(expr[i]) || expr[i] == '{' || expr[i] == '}') {
				i++
			}
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isPart(expr[i]) || expr[i] == '.') {
				i++
			}
		case isStart(c):
			j := i
			for j < len(expr) && isPart(expr[j]) {
				j++
			}
			word := expr[i:j]
			k := j
			for k < len(expr) && (expr[k] == ' ' || expr[k] == '\n' || expr[k] == '\t') {
				k++
			}
			switch {
			case deployLabelLists[strings.ToLower(word)] && k < len(expr) && expr[k] == '(':
				j = skipTo(k+1, ')')
			case deployPromQLKeywords[strings.ToLower(word)]:
			case k < len(expr) && expr[k] == '(':
				// a function
			default:
				names = append(names, word)
			}
			i = j
		default:
			i++
		}
	}
	return names
}

func TestDeployPromQLNames(t *testing.T) {
	for expr, want := range map[string]string{
		`sum by (job) (sipreg_registrations{state="auth-failed", job=~"a|b"}) > 0`:                                "sipreg_registrations",
		`histogram_quantile(0.99, sum by (le) (rate(x_bucket{job=~"$job"}[$__rate_interval])))`:                   "x_bucket",
		`min by (job, instance) (a) < 5 and on (job, instance) b{state="registered"} > 0`:                         "a b",
		`rate(c_total[5m]) / ignoring(outcome) group_left rate(d_total[5m] offset 1h) == bool 0`:                  "c_total d_total",
		`sum(rate(e_sum{job=~"$job"}[$__rate_interval])) / sum without (instance) (rate(f_count{x="}"}[1m:10s]))`: "e_sum f_count",
	} {
		if got := strings.Join(deployMetricNames(expr), " "); got != want {
			t.Errorf("%s: %q, want %q", expr, got, want)
		}
	}
}

// deployQueries returns every PromQL expression of the dashboard (panel targets and
// the templating's label_values queries) and of the alert rules, with where each is.
func deployQueries(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	raw, err := os.ReadFile(filepath.Join(deployDir, "grafana", "registry.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("grafana/registry.json: %v", err)
	}
	if deployGet(dash, "uid") == nil || deployGet(dash, "title") == nil {
		t.Error("grafana/registry.json: no uid or title")
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if e, ok := x["expr"].(string); ok {
				out[e] = "grafana/registry.json " + path
			}
			for k, c := range x {
				walk(path+"."+k, c)
			}
		case []any:
			for i, c := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), c)
			}
		case string:
			if m := regexp.MustCompile(`^label_values\((\w+),`).FindStringSubmatch(x); m != nil {
				out[m[1]] = "grafana/registry.json " + path
			}
		}
	}
	walk("", dash)
	panels := 0
	for _, p := range deployGet(dash, "panels").([]any) {
		if deployGet(p, "type") == "row" {
			continue
		}
		panels++
		if deployGet(p, "datasource", "uid") != "${datasource}" || deployGet(p, "targets", 0, "expr") == nil {
			t.Errorf("panel %v: no query on the ${datasource} variable", deployGet(p, "title"))
		}
	}
	if panels < 8 {
		t.Errorf("%d panels in the dashboard", panels)
	}

	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	raw, err = os.ReadFile(filepath.Join(deployDir, "prometheus", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	alerts := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts++
			out[r.Expr] = "alert " + r.Alert
			if r.Annotations["summary"] == "" {
				t.Errorf("alert %s has no summary", r.Alert)
			}
			anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], "README.md#")
			if !ok || !bytes.Contains(readme, []byte(`<a name="`+anchor+`"></a>`)) {
				t.Errorf("alert %s: runbook_url %q is not an anchor of README.md", r.Alert, r.Annotations["runbook_url"])
			}
		}
	}
	if alerts < 6 {
		t.Errorf("%d alert rules", alerts)
	}
	return out
}

// TestDeployMetricsExist: every metric name the dashboard and the alert rules query is
// in the /metrics of a real registry: one replica in clusterMode (so the cluster
// series are there) on the shared Redis, with a registered trunk (so
// sipreg_soonest_expiry_seconds is there).
func TestDeployMetricsExist(t *testing.T) {
	queries := deployQueries(t)
	want := map[string]string{}
	for q, where := range queries {
		names := deployMetricNames(q)
		if len(names) == 0 {
			t.Errorf("%s: no metric in %q", where, q)
		}
		for _, n := range names {
			want[n] = where
		}
	}

	f := startFakes(t, fakerequester.Script{Default: fakerequester.Behaviour{Kind: fakerequester.KindOK, Expires: 600}},
		[]*trunksv2beta1.Trunk{trunk("acme", "sip.acme.example", "acme", "acme-secret")})
	host, port, prefix := sharedRedis(t, "deploy")
	reg, httpAddr := registry(t, registryConfig(f.reqAddr, f.apiAddr, "startupSpread: 0s", "httpAddr: 127.0.0.1:0",
		"controlAddr: 127.0.0.1:0", "clusterMode: true", "leaseTTL: 3s", "keyPrefix: \""+prefix+"\"",
		"cache:", "  provider: redis", fmt.Sprintf("  parameters: host=%s,port=%s", host, port)))
	waitState(t, controlClient(reg.control(), ""), "acme", 30*time.Second, registryv1.RegistrationState_REGISTRATION_STATE_REGISTERED)

	// The gauges are computed at scrape time: scrape until every name is there.
	var missing []string
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		series := deployScrape(t, httpAddr)
		missing = missing[:0]
		for n := range want {
			if !series[n] {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		<-tick.C
	}
	slices.Sort(missing)
	t.Logf("metric names queried by the dashboard and the alerts: %v", slices.Sorted(maps.Keys(want)))
	for _, n := range missing {
		t.Errorf("%s queries %s, which the registry does not export", want[n], n)
	}
	if len(want) < 10 {
		t.Errorf("only %d metric names found in the dashboard and the alerts: %v", len(want), want)
	}
}

// deployScrape returns the series names of one /metrics scrape.
func deployScrape(t *testing.T, httpAddr string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for l := range strings.Lines(metricsText(t, httpAddr)) {
		if l == "" || l[0] == '#' {
			continue
		}
		if i := strings.IndexAny(l, "{ "); i > 0 {
			out[l[:i]] = true
		}
	}
	return out
}
