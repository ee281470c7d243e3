package testutil

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path"
	"regexp"
	"strings"
	"testing"
)

// The patterns are built from pieces so that this file does not match
// itself.
var (
	// outsideRef is a path into the design folder beside the repository,
	// which a clone does not have.
	outsideRef = regexp.MustCompile(`\.\./(\.\./)*` + `shared\b`)
	// mdRef is a Markdown file named in text, a link or a comment.
	mdRef = regexp.MustCompile(`[A-Za-z0-9_./:-]*[A-Za-z0-9_-]\.` + `md\b`)
	// specRef is a path into a folder of protocol specifications.
	specRef = regexp.MustCompile(`\bspe` + `c/[A-Za-z0-9_./-]*`)
)

// TestDocReferences fails when a tracked file points outside the
// repository or names a document that does not exist in it. A Markdown
// path resolves against the citing file's directory (as a link does) or
// the repository root (as a comment usually means it).
func TestDocReferences(t *testing.T) {
	root := ModuleRoot(t)
	cmd := exec.Command("git", "ls-files", "-z")
	cmd.Dir = root
	out, err := cmd.Output()
	Require(t, err == nil, "a git checkout", fmt.Sprintf("run the tests in a clone (git ls-files: %v)", err))
	files := strings.Split(strings.TrimRight(string(out), "\x00"), "\x00")
	tracked := map[string]bool{}
	for _, f := range files {
		tracked[f] = true
	}
	exists := func(p string) bool {
		if tracked[p] {
			return true
		}
		_, err := os.Stat(path.Join(root, p))
		return err == nil
	}
	var bad []string
	for _, f := range files {
		if f == "go.sum" || f == "" {
			continue
		}
		data, err := os.ReadFile(path.Join(root, f))
		if err != nil {
			if os.IsNotExist(err) {
				continue // deleted in the work tree, not yet committed
			}
			t.Fatal(err)
		}
		if bytes.IndexByte(data[:min(len(data), 8000)], 0) >= 0 {
			continue // binary
		}
		for i, line := range strings.Split(string(data), "\n") {
			where := fmt.Sprintf("%s:%d", f, i+1)
			if m := outsideRef.FindString(line); m != "" {
				bad = append(bad, fmt.Sprintf("%s: %q points outside the repository", where, m))
			}
			for _, m := range specRef.FindAllString(line, -1) {
				if !exists(strings.TrimRight(m, ".")) {
					bad = append(bad, fmt.Sprintf("%s: %q is not in the repository (cite a docs/architecture.md section or state the fact)", where, m))
				}
			}
			for _, m := range mdRef.FindAllString(line, -1) {
				if strings.Contains(m, "://") || strings.HasPrefix(m, "github.com/") {
					continue // a web address
				}
				m = strings.TrimLeft(m, ":")
				if !exists(path.Join(path.Dir(f), m)) && !exists(path.Clean(m)) {
					bad = append(bad, fmt.Sprintf("%s: %q does not exist in the repository", where, m))
				}
			}
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d references to documents a clone does not have:\n%s", len(bad), strings.Join(bad, "\n"))
	}
}

// TestReadmeShort keeps README.md for users: what it is, how to install,
// the binaries, links. Details belong in docs/.
func TestReadmeShort(t *testing.T) {
	const maxLines = 250
	data, err := os.ReadFile(path.Join(ModuleRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(data, []byte("\n")); n > maxLines {
		t.Errorf("README.md has %d lines, at most %d: move details into docs/", n, maxLines)
	}
}
