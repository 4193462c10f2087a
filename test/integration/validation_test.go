package integration

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/nodecycle/nodecycle/api/v1alpha1"
)

// The API server refuses what the manager could not use: a duration the
// client cannot parse (it broke the policy informer of every manager), a
// timeout of zero (every attempt failed after evicting everything), a ladder
// that names a step twice (it never ended).
var _ = Describe("The CRDs refuse bad input at kubectl apply", func() {
	policy := func(spec map[string]any) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": v1alpha1.GroupVersion.String(), "kind": "NodeCyclePolicy",
			"metadata": map[string]any{"generateName": "bad-", "namespace": "default"},
			"spec":     spec,
		}}
		return u
	}
	cycle := func(spec map[string]any) *unstructured.Unstructured {
		base := map[string]any{"nodeName": "n1", "strategies": []any{"reboot"}, "rebootTimeout": "15m", "attempt": int64(1),
			"drain": map[string]any{"timeout": "10m", "deleteEmptyDirData": true, "evictUnmanagedPods": true}}
		for k, v := range spec {
			if d, ok := v.(map[string]any); ok && k == "drain" {
				for dk, dv := range d {
					base["drain"].(map[string]any)[dk] = dv
				}
				continue
			}
			base[k] = v
		}
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": v1alpha1.GroupVersion.String(), "kind": "NodeCycle",
			"metadata": map[string]any{"generateName": "bad-", "namespace": "default"},
			"spec":     base,
		}}
	}
	freeze := func(start, end, reason string) map[string]any {
		return map[string]any{"start": start, "end": end, "reason": reason}
	}
	// refused creates obj and expects the API server to refuse it with a
	// message containing want ("" means: to accept it).
	refused := func(obj *unstructured.Unstructured, want string) {
		err := env.Client.Create(context.Background(), obj)
		if want == "" {
			Expect(err).NotTo(HaveOccurred())
			return
		}
		Expect(err).To(MatchError(ContainSubstring(want)))
	}
	DescribeTable("a NodeCyclePolicy",
		func(spec map[string]any, want string) { refused(policy(spec), want) },
		Entry("drainTimeout too long to parse (H1)", map[string]any{"drainTimeout": "9999999999h"}, "drainTimeout"),
		Entry("drainTimeout of zero", map[string]any{"drainTimeout": "0s"}, "must be a duration from 1s to 720h"),
		Entry("rebootTimeout of zero", map[string]any{"rebootTimeout": "0s"}, "must be a duration from 1s to 720h"),
		Entry("rebootTimeout over 30 days", map[string]any{"rebootTimeout": "721h"}, "must be a duration from 1s to 720h"),
		Entry("powerTimeout too long to parse", map[string]any{"powerCycle": map[string]any{"provider": "ipmi", "powerTimeout": "99999999999999h"}}, "powerTimeout"),
		Entry("a step twice (H9)", map[string]any{"strategies": []any{"reboot", "reboot"}}, "Duplicate value"),
		Entry("a freeze without an offset", map[string]any{"freezes": []any{freeze("2026-12-19T18:00:00", "2027-01-04T08:00:00+01:00", "holidays")}}, "must be an RFC 3339 time with its offset"),
		Entry("a freeze on a day that does not exist", map[string]any{"freezes": []any{freeze("2026-13-19T18:00:00Z", "2027-01-04T08:00:00Z", "holidays")}}, "must be an RFC 3339 time"),
		Entry("a freeze that ends before it starts", map[string]any{"freezes": []any{freeze("2027-01-04T08:00:00Z", "2026-12-19T18:00:00Z", "holidays")}}, "end must be after start"),
		Entry("a freeze of a year, not marked long", map[string]any{"freezes": []any{freeze("2026-12-19T18:00:00Z", "2027-12-19T18:00:00Z", "holidays")}}, "more than 31 days needs long: true"),
		Entry("a freeze without a reason", map[string]any{"freezes": []any{freeze("2026-12-19T18:00:00Z", "2026-12-20T18:00:00Z", "")}}, "reason"),
		Entry("a drainFailure that is none of the three", map[string]any{"drainFailure": "Retry"}, "Unsupported value"),
		Entry("a query threshold that is not a number", map[string]any{"blockingQueries": []any{map[string]any{"prometheusURL": "http://p:9090", "query": "up", "threshold": "high"}}}, "threshold"),
		Entry("a query for of two days", map[string]any{"blockingQueries": []any{map[string]any{"prometheusURL": "http://p:9090", "query": "up", "for": "48h"}}}, "must be a duration up to 24h"),
		Entry("a query without a query", map[string]any{"blockingQueries": []any{map[string]any{"prometheusURL": "http://p:9090", "query": ""}}}, "query"),
		Entry("good queries", map[string]any{"drainFailure": "SkipNode", "blockingQueries": []any{map[string]any{"prometheusURL": "http://p:9090", "query": "up == 0", "threshold": "1e-3", "for": "10m"},
			map[string]any{"prometheusURL": "https://p:9090", "query": "x", "threshold": "-.5"}}}, ""),
		Entry("good freezes", map[string]any{"freezes": []any{freeze("2026-12-19T18:00:00+01:00", "2027-01-04T08:00:00+01:00", "holidays"),
			map[string]any{"start": "2027-01-01T00:00:00Z", "end": "2028-01-01T00:00:00Z", "reason": "the big migration", "long": true}}}, ""),
		Entry("good durations", map[string]any{"drainTimeout": "20m", "rebootTimeout": "1h30m", "strategies": []any{"reboot", "power-cycle"},
			"powerCycle": map[string]any{"provider": "ipmi", "powerTimeout": "5m", "softOffTimeout": "0s"}}, ""),
	)
	DescribeTable("a NodeCycle",
		func(spec map[string]any, want string) { refused(cycle(spec), want) },
		Entry("drain timeout too long to parse", map[string]any{"drain": map[string]any{"timeout": "9999999999h"}}, "timeout"),
		Entry("reboot timeout of zero", map[string]any{"rebootTimeout": "0s"}, "must be a duration from 1s to 720h"),
		Entry("a step twice", map[string]any{"strategies": []any{"reboot", "power-cycle", "reboot"}}, "Duplicate value"),
		Entry("a grace period of 0 (force-delete)", map[string]any{"drain": map[string]any{"gracePeriodSeconds": int64(0)}}, "0 would force-delete"),
		Entry("good", map[string]any{"replaceTimeout": "45m"}, ""),
	)
	It("keeps a NodeCycle's spec as created (H11)", func() {
		nc := cycle(map[string]any{})
		Expect(env.Client.Create(context.Background(), nc)).To(Succeed())
		Expect(unstructured.SetNestedField(nc.Object, "other-cluster", "spec", "clusterName")).To(Succeed())
		Expect(env.Client.Update(context.Background(), nc)).To(MatchError(ContainSubstring("spec is immutable")))
	})
	It("takes an on-demand request with only a node, and fills it in once", func() {
		// Without spec.request, the settings are required.
		noSettings := cycle(map[string]any{})
		spec := noSettings.Object["spec"].(map[string]any)
		for _, k := range []string{"strategies", "attempt", "drain", "rebootTimeout"} {
			delete(spec, k)
		}
		refused(noSettings, "strategies, attempt, drain and rebootTimeout are required, unless the NodeCycle is an on-demand request")
		req := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": v1alpha1.GroupVersion.String(), "kind": "NodeCycle",
			"metadata": map[string]any{"generateName": "request-", "namespace": "default"},
			"spec":     map[string]any{"nodeName": "n1", "request": map[string]any{"strategy": "reboot", "reason": "kernel CVE"}},
		}}
		refused(req, "")
		// Filled in once, as the manager does; the request itself stays.
		filled := cycle(map[string]any{"request": map[string]any{"strategy": "reboot", "reason": "kernel CVE"}})
		filled.SetName(req.GetName())
		filled.SetGenerateName("")
		filled.SetResourceVersion(req.GetResourceVersion())
		changedRequest := filled.DeepCopy()
		Expect(unstructured.SetNestedField(changedRequest.Object, "other", "spec", "request", "reason")).To(Succeed())
		Expect(env.Client.Update(context.Background(), changedRequest)).To(MatchError(ContainSubstring("spec is immutable")))
		Expect(env.Client.Update(context.Background(), filled)).To(Succeed())
		// Then it is as immutable as any NodeCycle's.
		Expect(unstructured.SetNestedField(filled.Object, "20m", "spec", "rebootTimeout")).To(Succeed())
		Expect(env.Client.Update(context.Background(), filled)).To(MatchError(ContainSubstring("spec is immutable")))
	})
	It("keeps the manager's policy informer working", func() {
		// Every policy the API server accepted decodes in the client.
		var list v1alpha1.NodeCyclePolicyList
		Eventually(func() error { return env.Client.List(context.Background(), &list) }).WithTimeout(5 * time.Second).Should(Succeed())
		for _, p := range list.Items {
			if p.Labels[uncheckedLabel] == "" {
				Expect(p.Spec.DrainTimeout == nil || p.Spec.DrainTimeout.Duration > 0).To(BeTrue(), "policy %s", p.Name)
			}
		}
	})
})
