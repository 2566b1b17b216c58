package gitops

import (
	"fmt"
	"strings"
)

// CheckBranch applies git's rules for ref names (git check-ref-format) to a
// branch name, which also keeps a ref's path inside a git directory. The
// error wraps [ErrInvalid]. Every backend checks names with it, so that the
// same bad name gets the same answer everywhere.
func CheckBranch(b string) error {
	bad := func(why string) error { return fmt.Errorf("%w: invalid branch name %q: %s", ErrInvalid, b, why) }
	switch {
	case b == "":
		return bad("empty")
	case b == "@":
		return bad(`"@"`)
	case strings.HasSuffix(b, "/"), strings.HasSuffix(b, "."):
		return bad(`ends with "/" or "."`)
	case strings.Contains(b, ".."), strings.Contains(b, "@{"):
		return bad(`contains ".." or "@{"`)
	case strings.ContainsAny(b, " ~^:?*[\\\x7f"):
		return bad("contains a forbidden character")
	}
	for _, c := range b {
		if c < 0x20 {
			return bad("contains a control character")
		}
	}
	for _, name := range strings.Split(b, "/") {
		if name == "" || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".lock") {
			return bad(`empty component, or one starting with "." or ending with ".lock"`)
		}
	}
	return nil
}

// CheckPath rejects a path that cannot name a file in a git tree: it must be
// slash-separated and relative, without empty, ".", ".." or ".git"
// components, NUL or backslash. The error wraps [ErrInvalid].
func CheckPath(path string) error {
	bad := func(why string) error { return fmt.Errorf("%w: invalid path %q: %s", ErrInvalid, path, why) }
	if path == "" {
		return bad("empty")
	}
	if strings.ContainsAny(path, "\x00\\") {
		return bad("NUL or backslash in path")
	}
	for _, name := range strings.Split(path, "/") {
		switch {
		case name == "", name == ".", name == "..":
			return bad("want a clean, relative, slash-separated path")
		case strings.EqualFold(name, ".git"):
			return bad(".git is not allowed in a tree")
		}
	}
	return nil
}
