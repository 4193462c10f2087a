// Package version holds the version of the nodecycle binaries, set at build
// time by `make image` (-ldflags -X); "dev" for a plain go build.
package version

// Version is the release of these binaries, for example v0.1.0.
var Version = "dev"

// Requested reports whether args ask only for the version (--version).
func Requested(args []string) bool {
	return len(args) == 1 && (args[0] == "--version" || args[0] == "-version")
}
