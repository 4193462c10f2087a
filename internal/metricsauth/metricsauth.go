// Package metricsauth guards the manager's /metrics: the caller's bearer
// token is checked with the API server (TokenReview), and the caller must
// be allowed to get the non-resource URL /metrics (SubjectAccessReview).
// An allowed caller is remembered for a minute, so a scrape every few
// seconds costs the API server two requests a minute; a refusal for 10 s,
// so that a role just granted takes effect soon.
package metricsauth

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// How long a token's answer is kept.
const (
	allowedTTL = time.Minute
	refusedTTL = 10 * time.Second
)

// Filter is a metricsserver.Options.FilterProvider.
func Filter(cfg *rest.Config, httpClient *http.Client) (metricsserver.Filter, error) {
	cs, err := kubernetes.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	g := &guard{cs: cs, decided: map[string]decision{}, now: time.Now}
	return func(log logr.Logger, next http.Handler) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || token == "" {
				http.Error(w, "Unauthorized: a bearer token is needed", http.StatusUnauthorized)
				return
			}
			code, err := g.check(r.Context(), token, r.URL.Path)
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
	decided map[string]decision // by token and path
	now     func() time.Time
}

// check answers 200, 401 or 403 for the token on path; an API server that
// cannot be asked answers 403 (fail closed), not kept.
func (g *guard) check(ctx context.Context, token, path string) (int, error) {
	key := path + "\x00" + token
	g.mu.Lock()
	if d, ok := g.decided[key]; ok && g.now().Before(d.until) {
		g.mu.Unlock()
		return d.code, nil
	}
	g.mu.Unlock()
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
	for k, d := range g.decided { // forget what is old, so the map stays small
		if !g.now().Before(d.until) {
			delete(g.decided, k)
		}
	}
	ttl := refusedTTL
	if code == http.StatusOK {
		ttl = allowedTTL
	}
	g.decided[key] = decision{code: code, until: g.now().Add(ttl)}
	return code, nil
}
