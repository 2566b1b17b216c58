package fakegithub

import (
	"fmt"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// The resolvers: each type of schema.graphql is built as an obj below. To
// serve a new field, declare it in schema.graphql and add it to its type's
// obj: a value, or a resolver (computed only when selected, with the field's
// arguments). A new mutation goes into mutation(). They run with s.mu held.

// BlobTextLimit is how much of a blob GraphQL's Blob.text returns before it
// reports isTruncated.
const BlobTextLimit = 512 << 10

func (s *Server) query() obj {
	return obj{
		"__typename": "Query",
		"repository": resolver(func(args map[string]any) (any, error) {
			owner, _ := args["owner"].(string)
			name, _ := args["name"].(string)
			if !strings.EqualFold(owner, s.owner) || !strings.EqualFold(name, s.repo) {
				return nil, ferr("NOT_FOUND", "Could not resolve to a Repository with the name '%s/%s'.", owner, name)
			}
			return s.repository(), nil
		}),
		"viewer": obj{"__typename": "User", "login": "fake-user"},
	}
}

func (s *Server) mutation() obj {
	return obj{"__typename": "Mutation", "updateRefs": resolver(s.updateRefs)}
}

func (s *Server) repository() obj {
	return obj{
		"__typename": "Repository", "id": s.repoID,
		"ref": resolver(func(args map[string]any) (any, error) {
			q, _ := args["qualifiedName"].(string)
			for _, n := range []plumbing.ReferenceName{plumbing.ReferenceName(q), plumbing.NewBranchReferenceName(q), plumbing.NewTagReferenceName(q)} {
				if o := s.ref(n); o != nil {
					return o, nil
				}
			}
			return nil, nil
		}),
		"refs":   resolver(s.refs),
		"object": resolver(s.object),
	}
}

// ref is the Ref name, or nil when it does not exist.
func (s *Server) ref(name plumbing.ReferenceName) obj {
	ref, err := s.st.Reference(name)
	if err != nil {
		return nil
	}
	return obj{
		"__typename": "Ref", "name": name.Short(), "prefix": strings.TrimSuffix(name.String(), name.Short()),
		"target": s.gitObject(ref.Hash()),
	}
}

// gitObject is the Commit, Tree or Blob h, or nil.
func (s *Server) gitObject(h plumbing.Hash) obj {
	typ, ok := s.objectType(h)
	if !ok {
		return nil
	}
	var o obj
	switch typ {
	case plumbing.CommitObject:
		c, err := object.GetCommit(s.st, h)
		if err != nil {
			return nil
		}
		o = s.commit(c)
	case plumbing.TreeObject:
		o = obj{"__typename": "Tree"}
	case plumbing.BlobObject:
		b, err := s.blobBytes(h)
		if err != nil {
			return nil
		}
		var text any
		if !isBinary(b) {
			text = string(b[:min(len(b), BlobTextLimit)])
		}
		o = obj{"__typename": "Blob", "byteSize": len(b), "isBinary": isBinary(b), "isTruncated": len(b) > BlobTextLimit, "text": text}
	default:
		return nil
	}
	o["oid"], o["abbreviatedOid"] = h.String(), h.String()[:7] // the GitObject interface
	return o
}

func (s *Server) commit(c *object.Commit) obj {
	return obj{
		"__typename": "Commit", "message": c.Message, "author": actor(c.Author), "committer": actor(c.Committer),
		"tree": s.gitObject(c.TreeHash),
		"parents": resolver(func(args map[string]any) (any, error) {
			var nodes []obj
			for _, p := range c.ParentHashes {
				nodes = append(nodes, s.gitObject(p))
			}
			return connection("parents", nodes, args)
		}),
		"file": resolver(func(args map[string]any) (any, error) {
			p, _ := args["path"].(string)
			p = strings.Trim(p, "/")
			e, err := s.entryAt(c.TreeHash, p)
			if p == "" || err != nil {
				return nil, nil
			}
			return s.treeEntry(e, p), nil
		}),
		"history":   resolver(func(args map[string]any) (any, error) { return s.history(c, args) }),
		"signature": signature(c),
	}
}

func actor(sig object.Signature) obj {
	return obj{"__typename": "GitActor", "name": sig.Name, "email": sig.Email, "date": sig.When.Format(time.RFC3339)}
}

// connection pages nodes as GitHub does: first or last is required, 100 at most.
func connection(field string, nodes []obj, args map[string]any) (any, error) {
	first, hasFirst := argInt(args, "first")
	last, hasLast := argInt(args, "last")
	if !hasFirst && !hasLast {
		return nil, ferr("", "You must provide a `first` or `last` value to properly paginate the `%s` connection.", field)
	}
	if (hasFirst && (first < 0 || first > 100)) || (hasLast && (last < 0 || last > 100)) {
		return nil, ferr("", "Requesting %d records on the `%s` connection exceeds the `first` limit of 100 records.", max(first, last), field)
	}
	start, end := 0, len(nodes)
	if hasFirst && first < end {
		end = first
	}
	if hasLast && end-last > start {
		start = end - last
	}
	return obj{"__typename": "CommitConnection", "totalCount": len(nodes), "nodes": append([]obj{}, nodes[start:end]...)}, nil
}

func (s *Server) treeEntry(e object.TreeEntry, path string) obj {
	typ := map[filemode.FileMode]string{filemode.Dir: "tree", filemode.Submodule: "commit"}[e.Mode]
	if typ == "" {
		typ = "blob"
	}
	return obj{
		"__typename": "TreeEntry", "name": e.Name, "path": path, "type": typ, "oid": e.Hash.String(),
		"object": s.gitObject(e.Hash), // nil for a submodule's commit, stored elsewhere
	}
}

// updateRefs applies every RefUpdate or none, as GitHub's mutation does:
// an all-zero beforeOid creates a ref (that must not exist), an all-zero
// afterOid deletes one, and without force an update must fast-forward.
func (s *Server) updateRefs(args map[string]any) (any, error) {
	input, _ := args["input"].(map[string]any)
	if repoID, _ := input["repositoryId"].(string); repoID != s.repoID {
		return nil, ferr("NOT_FOUND", "Could not resolve to a node with the global id of '%s'", repoID)
	}
	updates, _ := input["refUpdates"].([]any)
	if len(updates) == 0 {
		return nil, ferr("UNPROCESSABLE", "refUpdates must not be empty")
	}
	plan := map[plumbing.ReferenceName]plumbing.Hash{}
	old := map[plumbing.ReferenceName]plumbing.Hash{}
	for _, u := range updates {
		m, _ := u.(map[string]any)
		name, _ := m["name"].(string)
		after, _ := m["afterOid"].(string)
		before, hasBefore := m["beforeOid"].(string)
		force, _ := m["force"].(bool)
		ref := plumbing.ReferenceName(name)
		if !strings.HasPrefix(name, "refs/") || strings.Contains(name, "..") || strings.HasSuffix(name, "/") {
			return nil, ferr("UNPROCESSABLE", "%q is not a valid fully qualified ref name", name)
		}
		if _, dup := plan[ref]; dup {
			return nil, ferr("UNPROCESSABLE", "%s is updated more than once", name)
		}
		if !isHex40(after) {
			return nil, ferr("UNPROCESSABLE", "afterOid %q is not a valid object id", after)
		}
		ah := plumbing.NewHash(after)
		if typ, ok := s.objectType(ah); !ah.IsZero() && (!ok || typ != plumbing.CommitObject) {
			return nil, ferr("UNPROCESSABLE", "Object %s does not exist", after)
		}
		var cur plumbing.Hash
		if r, err := s.st.Reference(ref); err == nil {
			cur = r.Hash()
		}
		if hasBefore && !isHex40(before) {
			return nil, ferr("UNPROCESSABLE", "beforeOid %q is not a valid object id", before)
		}
		if hasBefore && plumbing.NewHash(before) != cur {
			return nil, ferr(s.staleTyp, "Expected %s to point to %s but it points to %s.", name, before, cur)
		}
		if s.refusesForce(ref, cur, ah) {
			return nil, ferr("UNPROCESSABLE", "Cannot force-push to this branch: %s is a protected ref.", name)
		}
		if !force && !cur.IsZero() && !ah.IsZero() {
			if ff, err := s.isAncestor(cur, ah); err != nil || !ff {
				return nil, ferr("UNPROCESSABLE", "Update of %s is not a fast forward.", name)
			}
		}
		plan[ref], old[ref] = ah, cur
	}
	if err := s.setRefs(plan); err != nil {
		_ = s.setRefs(old) // roll back: all or none
		return nil, ferr("", "update refs: %v", err)
	}
	return obj{"__typename": "UpdateRefsPayload", "clientMutationId": input["clientMutationId"]}, nil
}

// setRefs points each ref at its hash, deleting it for the zero hash.
func (s *Server) setRefs(refs map[plumbing.ReferenceName]plumbing.Hash) error {
	for name, h := range refs {
		var err error
		if h.IsZero() {
			err = s.st.RemoveReference(name)
		} else {
			err = s.setRef(name, h)
		}
		if err != nil {
			return fmt.Errorf("update %s: %w", name, err)
		}
	}
	return nil
}
