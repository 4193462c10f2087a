package metricsauth

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// apiServer answers TokenReviews (only "prometheus-token", and the
// rotated one, are known) and
// SubjectAccessReviews (allowed), counting the reviews.
func apiServer() (*fake.Clientset, *int) {
	cs := fake.NewClientset()
	reviews := 0
	cs.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		reviews++
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
		if strings.HasSuffix(tr.Spec.Token, "prometheus-token") {
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: "system:serviceaccount:monitoring:prometheus"}}
		}
		return true, tr, nil
	})
	cs.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		sar.Status.Allowed = true
		return true, sar, nil
	})
	return cs, &reviews
}

// The scraper's address and one that floods the port.
const scraper, flooder = "10.0.0.10", "10.0.9.9"

// N9: a caller that sends a new token with every request costs the API
// server a bounded number of TokenReviews and the manager a bounded map,
// and the scraper whose token is remembered is still answered.
func TestNewTokensAreRateLimited(t *testing.T) {
	cs, reviews := apiServer()
	now := time.Unix(1_800_000_000, 0)
	g := newGuard(cs, func() time.Time { return now })
	ctx := context.Background()
	if code, err := g.check(ctx, "prometheus-token", "/metrics", scraper); code != http.StatusOK {
		t.Fatalf("the scraper: %d %v", code, err)
	}
	limited := 0
	for i := range 10_000 {
		code, err := g.check(ctx, fmt.Sprintf("forged-%d", i), "/metrics", flooder)
		switch code {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			limited++
		default:
			t.Fatalf("forged token %d: %d %v", i, code, err)
		}
		if i%100 == 0 {
			now = now.Add(time.Second) // 100 s in all
		}
	}
	if max := 1 + reviewBurst + 100*reviewsPerSecond + reviewsPerSecond; *reviews > max {
		t.Fatalf("%d TokenReviews for 10,000 forged tokens in 100 s, want at most %d", *reviews, max)
	}
	if limited == 0 {
		t.Fatal("no request was limited")
	}
	if code, _ := g.check(ctx, "prometheus-token", "/metrics", scraper); code != http.StatusOK {
		t.Fatalf("the remembered scraper got %d while new tokens were limited", code)
	}
	if len(g.decided) > maxRemembered {
		t.Fatalf("%d answers remembered, want at most %d", len(g.decided), maxRemembered)
	}
	for k := range g.decided {
		if len(k) != 32 {
			t.Fatal("tokens are remembered as they are")
		}
	}
}

// Remembered answers stay bounded when the limit allows many reviews: the
// refusals go first, the allowed scraper stays.
func TestRememberedAnswersAreBounded(t *testing.T) {
	cs, _ := apiServer()
	now := time.Unix(1_800_000_000, 0)
	g := newGuard(cs, func() time.Time { return now })
	ctx := context.Background()
	if code, _ := g.check(ctx, "prometheus-token", "/metrics", scraper); code != http.StatusOK {
		t.Fatal("the scraper was refused")
	}
	for i := range 3 * maxRemembered {
		now = now.Add(time.Second/reviewsPerSecond + 10*time.Millisecond) // never limited
		if i%(reviewsPerSecond*50) == 0 {
			_, _ = g.check(ctx, "prometheus-token", "/metrics", scraper) // keeps scraping; remembered for a minute
		}
		if code, _ := g.check(ctx, fmt.Sprintf("forged-%d", i), "/metrics", flooder); code != http.StatusUnauthorized {
			t.Fatalf("forged token %d: %d", i, code)
		}
		if len(g.decided) > maxRemembered {
			t.Fatalf("%d answers remembered, want at most %d", len(g.decided), maxRemembered)
		}
	}
}

// I7: while one address floods the port with forged tokens, the scraper's
// rotated token (never seen before) is reviewed at once from its own
// address's budget, not answered 429.
func TestAFloodDoesNotKeepARotatedTokenOut(t *testing.T) {
	cs, _ := apiServer()
	now := time.Unix(1_800_000_000, 0)
	g := newGuard(cs, func() time.Time { return now })
	ctx := context.Background()
	for i := range 1_000 {
		_, _ = g.check(ctx, fmt.Sprintf("forged-%d", i), "/metrics", flooder)
	}
	if code, _ := g.check(ctx, fmt.Sprintf("forged-%d", 1_000), "/metrics", flooder); code != http.StatusTooManyRequests {
		t.Fatalf("the flooder is not limited: %d", code)
	}
	if code, err := g.check(ctx, "rotated-prometheus-token", "/metrics", scraper); code != http.StatusOK {
		t.Fatalf("the scraper's rotated token: %d %v, want 200", code, err)
	}
}
