package fakegithub

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// What the weekly squash needs of the fake (SPEC §6.3): a commit's history
// in git log's order, its signature, refs listed by prefix, an object by
// oid, and protected branches that refuse force-moves.

// ProtectBranch makes updateRefs refuse any update of branch that is not a
// fast-forward (a force-move or a delete), as a branch protection rule
// without "allow force pushes" does.
func (s *Server) ProtectBranch(branch string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.protected == nil {
		s.protected = map[plumbing.ReferenceName]bool{}
	}
	s.protected[plumbing.NewBranchReferenceName(branch)] = true
}

// SetSignedCommit writes a copy of the commit sha carrying a gpgsig header
// and returns its oid: the fake reports it as signed.
func (s *Server) SetSignedCommit(sha string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := object.GetCommit(s.st, plumbing.NewHash(sha))
	if err != nil {
		return "", err
	}
	c.PGPSignature = "-----BEGIN PGP SIGNATURE-----\n\nfake\n-----END PGP SIGNATURE-----\n"
	o := s.st.NewEncodedObject()
	if err := c.Encode(o); err != nil {
		return "", err
	}
	h, err := s.st.SetEncodedObject(o)
	return h.String(), err
}

// history is Commit.history: c and its ancestors, newest committer date
// first, as git log lists them; after is an opaque cursor from an earlier
// page.
func (s *Server) history(c *object.Commit, args map[string]any) (any, error) {
	first, ok := argInt(args, "first")
	if !ok || first < 0 || first > 100 {
		return nil, ferr("", "You must provide a `first` value between 0 and 100 to paginate the `history` connection.")
	}
	skip := 0
	if a, _ := args["after"].(string); a != "" {
		_, n, _ := strings.Cut(a, " ")
		skip, _ = strconv.Atoi(n)
	}
	it := object.NewCommitIterCTime(c, nil, nil)
	defer it.Close()
	var nodes []obj
	i := 0
	more := false
	err := it.ForEach(func(x *object.Commit) error {
		switch {
		case i < skip:
		case len(nodes) < first:
			nodes = append(nodes, s.gitObject(x.Hash))
		default:
			more = true
			return storer.ErrStop
		}
		i++
		return nil
	})
	if err != nil {
		return nil, ferr("", "history: %v", err)
	}
	return obj{
		"__typename": "CommitHistoryConnection", "nodes": nodes,
		"pageInfo": obj{"__typename": "PageInfo", "hasNextPage": more, "endCursor": fmt.Sprintf("%s %d", c.Hash, skip+len(nodes))},
	}, nil
}

// signature is Commit.signature: null for an unsigned commit.
func signature(c *object.Commit) any {
	if c.PGPSignature == "" {
		return nil
	}
	return obj{"__typename": "GpgSignature", "isValid": false, "state": "UNKNOWN_KEY", "signature": c.PGPSignature}
}

// refs is Repository.refs: the refs under refPrefix, by name, named
// without the prefix as GitHub names them.
func (s *Server) refs(args map[string]any) (any, error) {
	prefix, _ := args["refPrefix"].(string)
	if !strings.HasPrefix(prefix, "refs/") || !strings.HasSuffix(prefix, "/") {
		return nil, ferr("", "refPrefix must start with refs/ and end with /")
	}
	first, ok := argInt(args, "first")
	if !ok || first < 0 || first > 100 {
		return nil, ferr("", "You must provide a `first` value between 0 and 100 to paginate the `refs` connection.")
	}
	skip := 0
	if a, _ := args["after"].(string); a != "" {
		skip, _ = strconv.Atoi(a)
	}
	iter, err := s.st.IterReferences()
	if err != nil {
		return nil, ferr("", "refs: %v", err)
	}
	var names []string
	_ = iter.ForEach(func(r *plumbing.Reference) error {
		if r.Type() == plumbing.HashReference && strings.HasPrefix(r.Name().String(), prefix) {
			names = append(names, r.Name().String())
		}
		return nil
	})
	sort.Strings(names)
	var nodes []obj
	for _, n := range names[min(skip, len(names)):] {
		if len(nodes) == first {
			break
		}
		o := s.ref(plumbing.ReferenceName(n))
		o["name"], o["prefix"] = strings.TrimPrefix(n, prefix), prefix
		nodes = append(nodes, o)
	}
	end := skip + len(nodes)
	return obj{
		"__typename": "RefConnection", "totalCount": len(names), "nodes": nodes,
		"pageInfo": obj{"__typename": "PageInfo", "hasNextPage": end < len(names), "endCursor": strconv.Itoa(end)},
	}, nil
}

// object is Repository.object(oid:).
func (s *Server) object(args map[string]any) (any, error) {
	oid, _ := args["oid"].(string)
	if !isHex40(oid) {
		return nil, nil
	}
	return s.gitObject(plumbing.NewHash(oid)), nil
}

// refusesForce reports whether ref is protected against an update from cur
// to after that is not a fast-forward.
func (s *Server) refusesForce(ref plumbing.ReferenceName, cur, after plumbing.Hash) bool {
	if !s.protected[ref] || cur.IsZero() {
		return false
	}
	if after.IsZero() {
		return true
	}
	ff, err := s.isAncestor(cur, after)
	return err != nil || !ff
}
