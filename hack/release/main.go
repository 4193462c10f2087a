// Command release writes nodecycle's clusterctl addon provider release:
// go run ./hack/release VERSION OUTDIR < (kubectl kustomize config/release)
// writes OUTDIR/addon-components.yaml and OUTDIR/metadata.yaml.
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/nodecycle/nodecycle/internal/release"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) != 3 {
		return fmt.Errorf("usage: release VERSION OUTDIR < kustomized-config-release")
	}
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		return err
	}
	components, metadata, err := release.Render(os.Args[1], in)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(os.Args[2], 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(os.Args[2], "addon-components.yaml"), components, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(os.Args[2], "metadata.yaml"), metadata, 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %s and %s (release %s)\n", filepath.Join(os.Args[2], "addon-components.yaml"), filepath.Join(os.Args[2], "metadata.yaml"), os.Args[1])
	return nil
}
