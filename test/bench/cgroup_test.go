package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// memoryCgroup is a memory cgroup of its own for the manager, limited as
// a container's memory limit is (the kubelet writes the same file): the
// kernel reclaims page cache at the limit and kills the process when its
// own memory does not fit.
type memoryCgroup struct {
	dir             string
	limitFile, peak string
}

// newMemoryCgroup makes a memory cgroup limited to limit bytes (cgroup v1
// at /sys/fs/cgroup/memory, or v2 with the memory controller).
func newMemoryCgroup(name string, limit int64) (*memoryCgroup, error) {
	var cg *memoryCgroup
	switch {
	case exists("/sys/fs/cgroup/memory/memory.limit_in_bytes"):
		cg = &memoryCgroup{dir: "/sys/fs/cgroup/memory/" + name, limitFile: "memory.limit_in_bytes", peak: "memory.max_usage_in_bytes"}
	case exists("/sys/fs/cgroup/cgroup.controllers"):
		cg = &memoryCgroup{dir: "/sys/fs/cgroup/" + name, limitFile: "memory.max", peak: "memory.peak"}
	default:
		return nil, errors.New("a memory limit needs a memory cgroup (v1 at /sys/fs/cgroup/memory, or v2 at /sys/fs/cgroup)")
	}
	if err := os.Mkdir(cg.dir, 0o755); err != nil && !os.IsExist(err) {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cg.dir, cg.limitFile), []byte(strconv.FormatInt(limit, 10)), 0o644); err != nil {
		_ = cg.remove()
		return nil, fmt.Errorf("limiting cgroup %s: %w", cg.dir, err)
	}
	return cg, nil
}

// command wraps argv so that it runs inside the cgroup from its first byte.
func (cg *memoryCgroup) command(argv ...string) []string {
	return append([]string{"sh", "-c", `echo $$ > "$0/cgroup.procs" && exec "$@"`, cg.dir}, argv...)
}

// peakBytes is the most memory the cgroup was charged with (the process's
// own and the page cache it used).
func (cg *memoryCgroup) peakBytes() (int64, error) {
	data, err := os.ReadFile(filepath.Join(cg.dir, cg.peak))
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
}

// remove deletes the cgroup once its process is gone.
func (cg *memoryCgroup) remove() error { return os.Remove(cg.dir) }

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
