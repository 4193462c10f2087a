// Command docs writes docs/reference.md from the code: the manager's and
// the agent's flags (from their flag sets), the names nodecycle writes on
// Nodes and its objects and every reason (the constants of api/v1alpha1,
// with their doc comments) and the metrics (their definitions). make docs
// runs it; make verify-generated fails when the file is stale.
//
//	go run ./hack/docs > docs/reference.md
package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/nodecycle/nodecycle/controllers"
	"github.com/nodecycle/nodecycle/internal/agent"
	"github.com/nodecycle/nodecycle/internal/flagenv"
)

func main() {
	if err := write(os.Stdout, "."); err != nil {
		fmt.Fprintln(os.Stderr, "docs:", err)
		os.Exit(1)
	}
}

func write(w io.Writer, root string) error {
	consts, err := constants(filepath.Join(root, "api", "v1alpha1"))
	if err != nil {
		return err
	}
	metrics, err := findMetrics(root, "controllers", "internal")
	if err != nil {
		return err
	}
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("# Reference\n\n")
	p("Generated from the code by `make docs` (hack/docs): do not edit; CI fails\n")
	p("when it is stale. How to use these is in [operations](operations.md),\n")
	p("[install](install.md) and [Cluster API](clusterapi.md).\n\n")

	p("## Manager flags\n\n")
	p("Every flag can also be given as an environment variable (the command line\n")
	p("wins); the install sets none but the namespace and the memory limit.\n\n")
	flagTable(w, controllers.FlagSet(), nil)
	p("\n## Agent flags\n\n")
	flagTable(w, agent.FlagSet(), agent.EnvAliases)

	p("\n## Names\n\n")
	p("What nodecycle writes on Nodes and its objects, and reads from them\n")
	p("(`api/v1alpha1`). Changing one is a breaking change.\n")
	for _, kind := range []struct{ prefix, title string }{
		{"Condition", "Conditions"}, {"Annotation", "Annotations"}, {"Label", "Labels"},
		{"Finalizer", "Finalizers"}, {"Taint", "Taints"},
	} {
		p("\n### %s\n\n| name | meaning |\n|---|---|\n", kind.title)
		for _, c := range consts {
			if strings.HasPrefix(c.name, kind.prefix) && c.typ == "" && c.value != "" {
				p("| `%s` | %s |\n", c.value, cell(c.doc))
			}
		}
	}

	p("\n## Reasons\n\n")
	p("Every reason nodecycle writes, in a condition, an Event or a NodeCycle's\n")
	p("`status.reason`: where, and what it means.\n")
	group := ""
	for _, c := range consts {
		if c.typ != "Reason" {
			continue
		}
		if c.group != group {
			group = c.group
			p("\n%s\n\n| reason | where: meaning |\n|---|---|\n", strings.TrimSpace(group))
		}
		p("| `%s` | %s |\n", c.value, cell(c.doc))
	}

	p("\n## Metrics\n\n")
	p("The manager serves `/metrics` on `:8443` (HTTPS, for tokens the ClusterRole\n")
	p("`nodecycle-metrics-reader` allows) with controller-runtime's own metrics;\n")
	p("the agent on `:8080`.\n")
	for _, component := range []string{"manager", "agent"} {
		p("\n### %s\n\n| metric | type | labels | meaning |\n|---|---|---|---|\n", strings.ToUpper(component[:1])+component[1:])
		for _, m := range metrics {
			if m.component == component {
				p("| `%s` | %s | %s | %s |\n", m.name, m.kind, m.labels, cell(m.help))
			}
		}
	}
	return nil
}

// flagTable writes a table of fs's flags with their environment variables.
func flagTable(w io.Writer, fs *flag.FlagSet, aliases map[string][]string) {
	fmt.Fprint(w, "| flag | environment | default | meaning |\n|---|---|---|---|\n")
	fs.VisitAll(func(f *flag.Flag) {
		env := []string{"`" + flagenv.Name(f.Name) + "`"}
		for _, a := range aliases[f.Name] {
			env = append(env, "`"+a+"`")
		}
		def := ""
		if f.DefValue != "" {
			def = "`" + f.DefValue + "`"
		}
		fmt.Fprintf(w, "| `--%s` | %s | %s | %s |\n", f.Name, strings.Join(env, ", "), def, cell(f.Usage))
	})
}

// cell makes text one table cell.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.ReplaceAll(s, "|", `\|`)
}

type constant struct {
	name, typ, value, doc, group string
}

// constants reads the string constants of the package in dir, in file and
// declaration order, with their values (literals, conversions and sums of
// other constants), doc comments and the doc comment of their group.
func constants(dir string) ([]constant, error) {
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []constant
	exprs := map[string]ast.Expr{}
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") || strings.HasPrefix(filepath.Base(file), "zz_") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, spec := range g.Specs {
				v := spec.(*ast.ValueSpec)
				typ := ""
				if id, ok := v.Type.(*ast.Ident); ok {
					typ = id.Name
				}
				doc := v.Doc.Text()
				if doc == "" {
					doc = v.Comment.Text()
				}
				for i, name := range v.Names {
					if i < len(v.Values) {
						exprs[name.Name] = v.Values[i]
					}
					out = append(out, constant{name: name.Name, typ: typ, doc: doc, group: g.Doc.Text()})
				}
			}
		}
	}
	for i := range out {
		out[i].value, _ = eval(exprs[out[i].name], exprs)
	}
	// A doc comment names constants by their Go names; the reader knows
	// their values.
	var names []string
	values := map[string]string{}
	for _, c := range out {
		if c.value != "" {
			names = append(names, c.name)
			values[c.name] = c.value
		}
	}
	sort.Slice(names, func(i, j int) bool { return len(names[i]) > len(names[j]) })
	for i := range out {
		for _, n := range names {
			out[i].doc = replaceWord(out[i].doc, n, "`"+values[n]+"`")
		}
	}
	return out, nil
}

// replaceWord replaces the whole-word occurrences of word in s.
func replaceWord(s, word, with string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, word)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		end := i + len(word)
		whole := (i == 0 || !isWordByte(s[i-1])) && (end == len(s) || !isWordByte(s[end]))
		b.WriteString(s[:i])
		if whole {
			b.WriteString(with)
		} else {
			b.WriteString(word)
		}
		s = s[end:]
	}
}

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// eval returns the string value of a constant expression, or false.
func eval(e ast.Expr, exprs map[string]ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(e.Value)
		return s, err == nil
	case *ast.Ident:
		if x, ok := exprs[e.Name]; ok {
			return eval(x, exprs)
		}
	case *ast.BinaryExpr:
		a, okA := eval(e.X, exprs)
		b, okB := eval(e.Y, exprs)
		return a + b, okA && okB && e.Op == token.ADD
	case *ast.CallExpr: // Reason("X")
		if len(e.Args) == 1 {
			return eval(e.Args[0], exprs)
		}
	case *ast.ParenExpr:
		return eval(e.X, exprs)
	}
	return "", false
}

type metric struct {
	component, name, kind, labels, help string
}

// findMetrics reads the metrics defined under dirs: prometheus.New*(Opts{Name,
// Help}, labels) and prometheus.NewDesc(name, help, labels, ...).
func findMetrics(root string, dirs ...string) ([]metric, error) {
	var out []metric
	for _, dir := range dirs {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
			if err != nil {
				return err
			}
			component := "manager"
			if strings.Contains(filepath.ToSlash(path), "internal/agent/") {
				component = "agent"
			}
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || !isIdent(sel.X, "prometheus") || !strings.HasPrefix(sel.Sel.Name, "New") || len(call.Args) == 0 {
					return true
				}
				m := metric{component: component}
				switch {
				case sel.Sel.Name == "NewDesc" && len(call.Args) >= 3:
					m.name, _ = eval(call.Args[0], nil)
					m.help, _ = eval(call.Args[1], nil)
					m.kind, m.labels = "gauge", labels(call.Args[2])
				default:
					opts, ok := call.Args[0].(*ast.CompositeLit)
					if !ok {
						return true
					}
					for _, el := range opts.Elts {
						if kv, ok := el.(*ast.KeyValueExpr); ok {
							switch key := kv.Key.(*ast.Ident).Name; key {
							case "Name":
								m.name, _ = eval(kv.Value, nil)
							case "Help":
								m.help, _ = eval(kv.Value, nil)
							}
						}
					}
					kind := strings.TrimSuffix(strings.TrimPrefix(sel.Sel.Name, "New"), "Vec")
					m.kind = strings.ToLower(kind)
					if len(call.Args) > 1 {
						m.labels = labels(call.Args[1])
					}
				}
				if m.name != "" {
					out = append(out, m)
				}
				return true
			})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}

// labels renders a []string{...} literal of label names.
func labels(e ast.Expr) string {
	lit, ok := e.(*ast.CompositeLit)
	if !ok {
		return ""
	}
	var names []string
	for _, el := range lit.Elts {
		if s, ok := eval(el, nil); ok {
			names = append(names, "`"+s+"`")
		}
	}
	return strings.Join(names, ", ")
}
