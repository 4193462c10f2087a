// Package inplace is nodecycle's Cluster API in-place update extension: it
// answers the runtime hooks CanUpdateMachineSet and CanUpdateMachine (which
// changes of a Machine's bootstrap configuration nodecycle applies without
// replacing the Machine) and UpdateMachine (it opens a reboot NodeCycle
// that carries the change, and reports the NodeCycle's progress).
package inplace

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/nodecycle/nodecycle/internal/nodeupdate"
)

// DefaultPaths are the directories whose files change in place by
// default (update.DefaultPaths, the agent's default too).
var DefaultPaths = nodeupdate.DefaultPaths

// MaxUpdateBytes bounds the content of one update: it travels in a Secret
// (the API server takes 1 MiB), kept well below for the agent's memory.
const MaxUpdateBytes = 128 << 10

// Rules say which changes are done in place.
type Rules struct {
	// Paths are the directory prefixes (ending in /) of the files that may
	// change in place.
	Paths []string
}

// bootstrapFile is a file of a bootstrap configuration, in the shape of
// Cluster API's KubeadmConfig (spec.files), the bootstrap provider
// nearly every cluster uses.
type bootstrapFile struct {
	Path        string          `json:"path"`
	Owner       string          `json:"owner,omitempty"`
	Permissions string          `json:"permissions,omitempty"`
	Encoding    string          `json:"encoding,omitempty"`
	Append      bool            `json:"append,omitempty"`
	Content     string          `json:"content,omitempty"`
	ContentFrom json.RawMessage `json:"contentFrom,omitempty"`
}

// files reads the files of a bootstrap configuration (at spec.files) or
// template (at spec.template.spec.files); the rest of its spec, with the
// files left out, is returned for comparison.
func files(raw runtime.RawExtension, template bool) (map[string]bootstrapFile, map[string]any, error) {
	obj, err := decode(raw)
	if obj == nil || err != nil {
		return nil, nil, err
	}
	u := &unstructured.Unstructured{Object: obj}
	path := []string{"spec"}
	if template {
		path = []string{"spec", "template", "spec"}
	}
	spec, _, err := unstructured.NestedMap(u.Object, path...)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s of the bootstrap configuration: %w", strings.Join(path, "."), err)
	}
	list, _ := spec["files"].([]any)
	delete(spec, "files")
	out := map[string]bootstrapFile{}
	for _, item := range list {
		b, _ := json.Marshal(item)
		var f bootstrapFile
		if err := json.Unmarshal(b, &f); err != nil {
			return nil, nil, fmt.Errorf("reading a file of the bootstrap configuration: %w", err)
		}
		out[f.Path] = f
	}
	return out, spec, nil
}

// Plan compares the files of the current and desired bootstrap
// configurations. It returns the files to write, or why the change is not
// one nodecycle does in place (then Cluster API replaces the Machines).
func (r Rules) Plan(current, desired map[string]bootstrapFile) ([]nodeupdate.File, error) {
	var changed []nodeupdate.File
	var why []string
	size := 0
	for _, path := range sortedKeys(current) {
		if _, ok := desired[path]; !ok {
			why = append(why, fmt.Sprintf("file %s is removed (a removal is not done in place)", path))
		}
	}
	for _, path := range sortedKeys(desired) {
		d := desired[path]
		if c, ok := current[path]; ok && sameFile(c, d) {
			continue
		}
		f, err := r.file(d)
		if err != nil {
			why = append(why, err.Error())
			continue
		}
		size += len(f.Content)
		changed = append(changed, f)
	}
	if size > MaxUpdateBytes {
		why = append(why, fmt.Sprintf("the changed files hold %d bytes, more than the %d an in-place update carries", size, MaxUpdateBytes))
	}
	if len(why) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(why, "; "))
	}
	if err := nodeupdate.Check(changed); err != nil {
		return nil, err
	}
	return changed, nil
}

// file is the update of one changed file, or why it is not done in place.
func (r Rules) file(f bootstrapFile) (nodeupdate.File, error) {
	out := nodeupdate.File{Path: f.Path, Permissions: f.Permissions}
	switch {
	case nodeupdate.CheckPath(f.Path) != nil:
		return out, nodeupdate.CheckPath(f.Path)
	case !nodeupdate.Under(f.Path, r.Paths):
		return out, fmt.Errorf("file %s is not under a directory changed in place (%s)", f.Path, strings.Join(r.Paths, ", "))
	case len(f.ContentFrom) > 0 && string(f.ContentFrom) != "null" && string(f.ContentFrom) != "{}":
		return out, fmt.Errorf("file %s takes its content from a Secret (only inline content is carried, it travels in a Node annotation)", f.Path)
	case f.Append:
		return out, fmt.Errorf("file %s is appended to (only whole files are written in place)", f.Path)
	case f.Owner != "" && f.Owner != "root" && f.Owner != "root:root":
		return out, fmt.Errorf("file %s is owned by %s (files are written as root)", f.Path, f.Owner)
	}
	switch f.Encoding {
	case "":
		out.Content = f.Content
	case "base64":
		b, err := base64.StdEncoding.DecodeString(f.Content)
		if err != nil {
			return out, fmt.Errorf("file %s: content is not base64: %w", f.Path, err)
		}
		out.Content = string(b)
	default:
		return out, fmt.Errorf("file %s has encoding %s (plain and base64 are written in place)", f.Path, f.Encoding)
	}
	if _, err := nodeupdate.Mode(out.Path, out.Permissions); err != nil {
		return out, err
	}
	return out, nil
}

// sameFiles says whether two configurations have the same files.
func sameFiles(a, b map[string]bootstrapFile) bool {
	if len(a) != len(b) {
		return false
	}
	for path, f := range a {
		if g, ok := b[path]; !ok || !sameFile(f, g) {
			return false
		}
	}
	return true
}

func sameFile(a, b bootstrapFile) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func sortedKeys(m map[string]bootstrapFile) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Writes are the files an UpdateMachine writes: every file of the desired
// configuration under the paths changed in place (the unchanged ones are
// written again with the content they have, which changes nothing, so the
// update is the same whatever the Machine's history).
func (r Rules) Writes(desired map[string]bootstrapFile) []nodeupdate.File {
	var out []nodeupdate.File
	for _, path := range sortedKeys(desired) {
		if f, err := r.file(desired[path]); err == nil {
			out = append(out, f)
		}
	}
	return out
}

// decode is the object of a hook request's RawExtension; nil when empty.
func decode(raw runtime.RawExtension) (map[string]any, error) {
	data := raw.Raw
	if len(data) == 0 {
		if raw.Object == nil {
			return nil, nil
		}
		var err error
		if data, err = json.Marshal(raw.Object); err != nil {
			return nil, err
		}
	}
	obj := map[string]any{}
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, fmt.Errorf("reading the bootstrap configuration: %w", err)
	}
	return obj, nil
}
