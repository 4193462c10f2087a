// Package flagenv lets every command-line flag be given as an environment variable too.
package flagenv

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// Name is the environment variable for a flag: NODECYCLE_ and the flag name
// in upper case with dashes as underscores (--drain-timeout is
// NODECYCLE_DRAIN_TIMEOUT).
func Name(flagName string) string {
	return "NODECYCLE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Apply sets every flag not given on the command line from its environment
// variable, when that is set. aliases maps a flag to extra variable names
// tried after the NODECYCLE_ one (NODE_NAME from the downward API). A value
// the flag refuses is an error naming the variable.
func Apply(fs *flag.FlagSet, lookup func(string) (string, bool), aliases map[string][]string) error {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] {
			return
		}
		for _, env := range append([]string{Name(f.Name)}, aliases[f.Name]...) {
			v, ok := lookup(env)
			if !ok {
				continue
			}
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("invalid value %q for environment variable %s (flag --%s): %w", v, env, f.Name, serr)
			}
			return
		}
	})
	return err
}
