package gates

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// A Series is one series a blocking query returned: its labels, as
// PromQL prints them, and its last value.
type Series struct {
	Labels string
	Value  float64
}

func (s Series) String() string { return s.Labels + " " + strconv.FormatFloat(s.Value, 'g', 6, 64) }

// queryRangePoints is how many evaluations a query with a `for` is checked
// at, over [now-for, now]: as an alerting rule evaluated that often.
const queryRangePoints = 30

// BlockingSeries asks Prometheus (HTTP API v1) for the gate's query as of
// now and returns the series that hold maintenance, sorted: those above
// the threshold (any, without one), and with a `for`, those that were so
// at every step of the last `for` (a query_range over [now-for, now], so
// a manager restart neither reopens nor forgets the gate).
func BlockingSeries(ctx context.Context, c *http.Client, g *v1alpha1.QueryGate, now time.Time) ([]Series, error) {
	if c == nil {
		c = noRedirects
	}
	above := math.Inf(-1)
	if g.Threshold != "" {
		t, err := strconv.ParseFloat(g.Threshold, 64)
		if err != nil {
			return nil, fmt.Errorf("query %q: threshold %q is not a number", g.Query, g.Threshold)
		}
		above = t
	}
	q := url.Values{"query": {g.Query}}
	path, points := "/api/v1/query", 1
	if g.For != nil && g.For.Duration > 0 {
		step := max(g.For.Duration/queryRangePoints, time.Second).Truncate(time.Millisecond)
		points = int(g.For.Duration/step) + 1
		start := now.Add(-time.Duration(points-1) * step)
		path = "/api/v1/query_range"
		q.Set("start", unixSeconds(start))
		q.Set("end", unixSeconds(now))
		q.Set("step", strconv.FormatFloat(step.Seconds(), 'f', 3, 64))
	} else {
		q.Set("time", unixSeconds(now))
	}
	body, err := ask(ctx, c, strings.TrimSuffix(g.PrometheusURL, "/")+path, q)
	if err != nil {
		return nil, fmt.Errorf("query %q on %s: %w", g.Query, g.PrometheusURL, err)
	}
	var out []Series
	for _, r := range body.Data.Result {
		values := r.Values
		if r.Value != nil {
			values = [][2]json.RawMessage{*r.Value}
		}
		if len(values) < points {
			continue // missing at a step of the `for`
		}
		last, held := 0.0, true
		for _, v := range values {
			var s string
			if err := json.Unmarshal(v[1], &s); err != nil {
				return nil, fmt.Errorf("query %q on %s: a value is not a string: %s", g.Query, g.PrometheusURL, v[1])
			}
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return nil, fmt.Errorf("query %q on %s: value %q is not a number", g.Query, g.PrometheusURL, s)
			}
			last, held = f, held && (f > above || math.IsInf(above, -1))
		}
		if held {
			out = append(out, Series{Labels: labelString(r.Metric), Value: last})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Labels < out[j].Labels })
	return out, nil
}

// queryResponse is the Prometheus HTTP API's answer to a query: a vector
// or a scalar (value), or a matrix (values).
type queryResponse struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string          `json:"resultType"`
		Raw        json.RawMessage `json:"result"`
		Result     []querySeries   `json:"-"`
	} `json:"data"`
}

// querySeries is one series of a vector (value) or a matrix (values); a
// scalar is one without labels.
type querySeries struct {
	Metric map[string]string    `json:"metric"`
	Value  *[2]json.RawMessage  `json:"value"`
	Values [][2]json.RawMessage `json:"values"`
}

// ask GETs the query and reads its result; an answer other than success
// is an error that says what Prometheus said.
func ask(ctx context.Context, c *http.Client, u string, q url.Values) (*queryResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	var body queryResponse
	if err := json.Unmarshal(raw, &body); err != nil || body.Status == "" {
		return nil, fmt.Errorf("answered %s, not a Prometheus query result", resp.Status)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("answered %s: %s: %s", resp.Status, body.ErrorType, body.Error)
	}
	switch body.Data.ResultType {
	case "scalar":
		var v [2]json.RawMessage
		if err := json.Unmarshal(body.Data.Raw, &v); err != nil {
			return nil, fmt.Errorf("reading the scalar: %w", err)
		}
		body.Data.Result = []querySeries{{Value: &v}}
	case "vector", "matrix":
		if err := json.Unmarshal(body.Data.Raw, &body.Data.Result); err != nil {
			return nil, fmt.Errorf("reading the %s: %w", body.Data.ResultType, err)
		}
	default:
		return nil, fmt.Errorf("the query returns a %s: want a vector or a scalar", body.Data.ResultType)
	}
	return &body, nil
}

// labelString prints labels as PromQL does: {a="1", b="2"}, sorted.
func labelString(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.Quote(m[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func unixSeconds(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}
