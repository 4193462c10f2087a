package release

import (
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	components, metadata, err := Render("v0.2.1", []byte("image: ghcr.io/nodecycle/nodecycle:RELEASE_VERSION\n"))
	if err != nil {
		t.Fatal(err)
	}
	if string(components) != "image: ghcr.io/nodecycle/nodecycle:v0.2.1\n" {
		t.Errorf("components %q", components)
	}
	for _, want := range []string{"kind: Metadata", "- major: 0\n  minor: 1\n  contract: v1beta2", "- major: 0\n  minor: 2\n  contract: v1beta2"} {
		if !strings.Contains(string(metadata), want) {
			t.Errorf("metadata lacks %q:\n%s", want, metadata)
		}
	}
	for _, bad := range []string{"0.1.0", "v0.1", "v0.0.3", "vX.1.0"} {
		if _, _, err := Render(bad, []byte("RELEASE_VERSION")); err == nil {
			t.Errorf("version %q accepted", bad)
		}
	}
	if _, _, err := Render("v0.1.0", []byte("no placeholder")); err == nil {
		t.Error("components without the placeholder accepted")
	}
}
