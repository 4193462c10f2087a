// Package metricsauth guards the manager's /metrics: the caller's bearer
// token is checked with the API server (TokenReview), and the caller must
// be allowed to get the non-resource URL /metrics (SubjectAccessReview).
// An allowed caller is remembered for a minute, so a scrape every few
// seconds costs the API server two requests a minute; a refusal for 10 s,
// so that a role just granted takes effect soon.
//
// Anyone who reaches the port can send a new token with every request:
// the reviews of tokens not remembered are rate-limited per source address
// (reviewsPerSecond, reviewBurst each; beyond that the answer is 429
// without asking the API server) and in all (totalPerSecond, totalBurst),
// so a flood of forged tokens from one address does not keep a scraper's
// rotated token out; tokens are remembered by their SHA-256 only, and at
// most maxRemembered answers and maxSources addresses are kept.
package metricsauth

import (
	"context"
	"crypto/sha256"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// How long a token's answer is kept, how many are kept, and how fast
// tokens not remembered are reviewed.
const (
	allowedTTL       = time.Minute
	refusedTTL       = 10 * time.Second
	maxRemembered    = 1024
	reviewsPerSecond = 2
	reviewBurst      = 10
	totalPerSecond   = 20
	totalBurst       = 50
	maxSources       = 1024
)

// Filter is a metricsserver.Options.FilterProvider.
func Filter(cfg *rest.Config, httpClient *http.Client) (metricsserver.Filter, error) {
	cs, err := kubernetes.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	g := newGuard(cs, time.Now)
	return func(log logr.Logger, next http.Handler) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || token == "" {
				http.Error(w, "Unauthorized: a bearer token is needed", http.StatusUnauthorized)
				return
			}
			source, _, _ := net.SplitHostPort(r.RemoteAddr)
			code, err := g.check(r.Context(), token, r.URL.Path, source)
			if err != nil {
				log.Error(err, "Checking a /metrics caller")
			}
			if code != http.StatusOK {
				http.Error(w, http.StatusText(code), code)
				return
			}
			next.ServeHTTP(w, r)
		}), nil
	}, nil
}

type decision struct {
	code  int
	until time.Time
}

type guard struct {
	cs      kubernetes.Interface
	mu      sync.Mutex
	decided map[[sha256.Size]byte]decision // by the hash of path and token
	reviews *rate.Limiter                  // in all
	sources map[string]*rate.Limiter       // by source address
	now     func() time.Time
}

func newGuard(cs kubernetes.Interface, now func() time.Time) *guard {
	return &guard{cs: cs, decided: map[[sha256.Size]byte]decision{}, now: now,
		reviews: rate.NewLimiter(totalPerSecond, totalBurst), sources: map[string]*rate.Limiter{}}
}

// allowReview spends a review from source's budget and the total one;
// called with mu held.
func (g *guard) allowReview(source string) bool {
	l, ok := g.sources[source]
	if !ok {
		if len(g.sources) >= maxSources {
			clear(g.sources) // many addresses: each starts again; the total still holds
		}
		l = rate.NewLimiter(reviewsPerSecond, reviewBurst)
		g.sources[source] = l
	}
	now := g.now()
	return l.AllowN(now, 1) && g.reviews.AllowN(now, 1)
}

// check answers 200, 401 or 403 for the token on path, or 429 when too
// many tokens not remembered came in from source (or in all); an API
// server that cannot be asked answers 403 (fail closed), not kept.
func (g *guard) check(ctx context.Context, token, path, source string) (int, error) {
	key := sha256.Sum256([]byte(path + "\x00" + token))
	g.mu.Lock()
	d, known := g.decided[key]
	if known && g.now().Before(d.until) {
		g.mu.Unlock()
		return d.code, nil
	}
	// A caller allowed before is asked about again at once: new tokens
	// never keep the scraper out.
	limited := (!known || d.code != http.StatusOK) && !g.allowReview(source)
	g.mu.Unlock()
	if limited {
		return http.StatusTooManyRequests, nil
	}
	tr, err := g.cs.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return http.StatusForbidden, err
	}
	code := http.StatusUnauthorized
	if tr.Status.Authenticated {
		u := tr.Status.User
		extra := map[string]authorizationv1.ExtraValue{}
		for k, v := range u.Extra {
			extra[k] = authorizationv1.ExtraValue(v)
		}
		sar, err := g.cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
			NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: path, Verb: "get"},
		}}, metav1.CreateOptions{})
		if err != nil {
			return http.StatusForbidden, err
		}
		code = http.StatusForbidden
		if sar.Status.Allowed {
			code = http.StatusOK
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.decided) >= maxRemembered {
		g.forget(code == http.StatusOK)
	}
	ttl := refusedTTL
	if code == http.StatusOK {
		ttl = allowedTTL
	}
	g.decided[key] = decision{code: code, until: g.now().Add(ttl)}
	return code, nil
}

// forget makes room: the refusals that are old, the other refusals, the
// allowed callers that are old, then, for an allowed caller, any.
func (g *guard) forget(allowed bool) {
	now := g.now()
	for _, gone := range []func(decision) bool{
		func(d decision) bool { return d.code != http.StatusOK && !now.Before(d.until) },
		func(d decision) bool { return d.code != http.StatusOK },
		func(d decision) bool { return !now.Before(d.until) },
		func(decision) bool { return allowed },
	} {
		for k, d := range g.decided {
			if len(g.decided) < maxRemembered {
				return
			}
			if gone(d) {
				delete(g.decided, k)
			}
		}
	}
}
