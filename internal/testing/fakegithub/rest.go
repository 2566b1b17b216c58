package fakegithub

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

func unprocessable(w http.ResponseWriter, format string, args ...any) {
	writeJSON(w, http.StatusUnprocessableEntity, restError{
		Message:          fmt.Sprintf(format, args...),
		DocumentationURL: "https://docs.github.com/rest/git",
		Status:           "422",
	})
}

func notFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, restError{Message: "Not Found", DocumentationURL: "https://docs.github.com/rest", Status: "404"})
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, restError{Message: "Problems parsing JSON", DocumentationURL: "https://docs.github.com/rest", Status: "400"})
		return false
	}
	return true
}

func (s *Server) apiURL(r *http.Request, format string, args ...any) string {
	return s.srv.URL + "/repos/" + s.owner + "/" + s.repo + "/" + fmt.Sprintf(format, args...)
}

type treeEntryIn struct {
	Path    string          `json:"path"`
	Mode    string          `json:"mode"`
	Type    string          `json:"type"`
	SHA     json.RawMessage `json:"sha"`
	Content *string         `json:"content"`
}

type treeEntryOut struct {
	Path string `json:"path"`
	Mode string `json:"mode"`
	Type string `json:"type"`
	SHA  string `json:"sha"`
	Size *int   `json:"size,omitempty"`
	URL  string `json:"url"`
}

var modes = map[string]filemode.FileMode{
	"100644": filemode.Regular,
	"100755": filemode.Executable,
	"040000": filemode.Dir,
	"160000": filemode.Submodule,
	"120000": filemode.Symlink,
}

// createTree serves POST /repos/{o}/{r}/git/trees.
func (s *Server) createTree(w http.ResponseWriter, r *http.Request) {
	var in struct {
		BaseTree string        `json:"base_tree"`
		Tree     []treeEntryIn `json:"tree"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	if len(in.Tree) == 0 {
		unprocessable(w, "Invalid request.\n\n\"tree\" wasn't supplied.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var base plumbing.Hash
	if in.BaseTree != "" {
		if typ, ok := s.objectType(plumbing.NewHash(in.BaseTree)); !isHex40(in.BaseTree) || !ok || typ != plumbing.TreeObject {
			unprocessable(w, "base_tree %s is not a valid tree oid", in.BaseTree)
			return
		}
		base = plumbing.NewHash(in.BaseTree)
	}
	var edits []treeEdit
	for _, e := range in.Tree {
		mode, ok := modes[e.Mode]
		if !ok {
			unprocessable(w, "tree.mode %q is not one of 100644, 100755, 040000, 160000, 120000 (path %q)", e.Mode, e.Path)
			return
		}
		if e.Path == "" || strings.HasPrefix(e.Path, "/") || strings.HasSuffix(e.Path, "/") || strings.Contains(e.Path, "//") {
			unprocessable(w, "tree.path %q is invalid", e.Path)
			return
		}
		var sha *string
		if len(e.SHA) > 0 && string(e.SHA) != "null" {
			var v string
			if err := json.Unmarshal(e.SHA, &v); err != nil {
				unprocessable(w, "tree.sha is not a string (path %q)", e.Path)
				return
			}
			sha = &v
		}
		switch {
		case sha != nil && e.Content != nil:
			unprocessable(w, "Must supply either tree.sha or tree.content, not both (path %q)", e.Path)
			return
		case e.Content != nil:
			if mode == filemode.Dir || mode == filemode.Submodule {
				unprocessable(w, "tree.content needs a blob mode (path %q)", e.Path)
				return
			}
			edits = append(edits, treeEdit{path: e.Path, mode: mode, hash: s.putBlob([]byte(*e.Content))})
		case sha != nil:
			want := plumbing.BlobObject
			if mode == filemode.Dir {
				want = plumbing.TreeObject
			}
			if mode != filemode.Submodule {
				if typ, ok := s.objectType(plumbing.NewHash(*sha)); !isHex40(*sha) || !ok || typ != want {
					unprocessable(w, "tree.sha %s is not a valid %s", *sha, strings.ToLower(want.String()))
					return
				}
			}
			edits = append(edits, treeEdit{path: e.Path, mode: mode, hash: plumbing.NewHash(*sha)})
		default: // "sha": null deletes
			edits = append(edits, treeEdit{path: e.Path, delete: true})
		}
	}
	h, err := s.applyEdits(base, edits)
	if err != nil {
		unprocessable(w, "%v", err)
		return
	}
	t, _ := object.GetTree(s.st, h)
	out := []treeEntryOut{}
	for _, e := range t.Entries {
		te := treeEntryOut{Path: e.Name, Mode: fmt.Sprintf("%06o", uint32(e.Mode)), Type: "blob", SHA: e.Hash.String()}
		switch e.Mode {
		case filemode.Dir:
			te.Type = "tree"
			te.URL = s.apiURL(r, "git/trees/%s", e.Hash)
		case filemode.Submodule:
			te.Type = "commit"
		default:
			if o, err := s.st.EncodedObject(plumbing.BlobObject, e.Hash); err == nil {
				n := int(o.Size())
				te.Size = &n
			}
			te.URL = s.apiURL(r, "git/blobs/%s", e.Hash)
		}
		out = append(out, te)
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"sha": h.String(), "url": s.apiURL(r, "git/trees/%s", h), "tree": out, "truncated": false,
	})
}

type gitActor struct {
	Name  string `json:"name"`
	Email string `json:"email"`
	Date  string `json:"date,omitempty"`
}

func actorOut(sig object.Signature) gitActor {
	return gitActor{Name: sig.Name, Email: sig.Email, Date: sig.When.UTC().Format(time.RFC3339)}
}

// createCommit serves POST /repos/{o}/{r}/git/commits.
func (s *Server) createCommit(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Message   *string   `json:"message"`
		Tree      string    `json:"tree"`
		Parents   []string  `json:"parents"`
		Author    *gitActor `json:"author"`
		Committer *gitActor `json:"committer"`
		Signature *string   `json:"signature"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	if in.Message == nil {
		unprocessable(w, "Invalid request.\n\n\"message\" wasn't supplied.")
		return
	}
	if in.Tree == "" {
		unprocessable(w, "Invalid request.\n\n\"tree\" wasn't supplied.")
		return
	}
	now := time.Now().Truncate(time.Second)
	sig := func(a *gitActor, def object.Signature) (object.Signature, bool) {
		if a == nil {
			return def, true
		}
		out := object.Signature{Name: a.Name, Email: a.Email, When: def.When}
		if a.Date != "" {
			t, err := time.Parse(time.RFC3339, a.Date)
			if err != nil {
				return out, false
			}
			out.When = t
		}
		return out, true
	}
	author, ok := sig(in.Author, object.Signature{Name: "fake-user", Email: "fake-user@users.noreply.github.com", When: now})
	if !ok {
		unprocessable(w, "Invalid request.\n\nauthor.date %q is not a valid ISO 8601 timestamp.", in.Author.Date)
		return
	}
	committer, ok := sig(in.Committer, author)
	if !ok {
		unprocessable(w, "Invalid request.\n\ncommitter.date %q is not a valid ISO 8601 timestamp.", in.Committer.Date)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if typ, ok := s.objectType(plumbing.NewHash(in.Tree)); !isHex40(in.Tree) || !ok || typ != plumbing.TreeObject {
		unprocessable(w, "Tree SHA does not exist")
		return
	}
	c := &object.Commit{Author: author, Committer: committer, Message: *in.Message, TreeHash: plumbing.NewHash(in.Tree)}
	for _, p := range in.Parents {
		if typ, ok := s.objectType(plumbing.NewHash(p)); !isHex40(p) || !ok || typ != plumbing.CommitObject {
			unprocessable(w, "Parent SHA does not exist or is not a commit object")
			return
		}
		c.ParentHashes = append(c.ParentHashes, plumbing.NewHash(p))
	}
	if in.Signature != nil {
		c.PGPSignature = *in.Signature
	}
	h, err := s.putCommit(c)
	if err != nil {
		unprocessable(w, "%v", err)
		return
	}
	parents := []map[string]string{}
	for _, p := range c.ParentHashes {
		parents = append(parents, map[string]string{"sha": p.String(), "url": s.apiURL(r, "git/commits/%s", p)})
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"sha":       h.String(),
		"node_id":   "C_fake" + h.String()[:12],
		"url":       s.apiURL(r, "git/commits/%s", h),
		"author":    actorOut(author),
		"committer": actorOut(committer),
		"message":   *in.Message,
		"tree":      map[string]string{"sha": in.Tree, "url": s.apiURL(r, "git/trees/%s", in.Tree)},
		"parents":   parents,
		"verification": map[string]any{
			"verified": false, "reason": "unsigned", "signature": nil, "payload": nil,
		},
	})
}

// createBlob serves POST /repos/{o}/{r}/git/blobs.
func (s *Server) createBlob(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Content  *string `json:"content"`
		Encoding string  `json:"encoding"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	if in.Content == nil {
		unprocessable(w, "Invalid request.\n\n\"content\" wasn't supplied.")
		return
	}
	b := []byte(*in.Content)
	switch in.Encoding {
	case "", "utf-8":
	case "base64":
		var err error
		if b, err = base64.StdEncoding.DecodeString(*in.Content); err != nil {
			unprocessable(w, "content is not valid Base64")
			return
		}
	default:
		unprocessable(w, "encoding must be utf-8 or base64")
		return
	}
	s.mu.Lock()
	h := s.putBlob(b)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]string{"sha": h.String(), "url": s.apiURL(r, "git/blobs/%s", h)})
}

// getBlob serves GET /repos/{o}/{r}/git/blobs/{sha}, raw or as JSON.
func (s *Server) getBlob(w http.ResponseWriter, r *http.Request) {
	sha := r.PathValue("sha")
	s.mu.Lock()
	b, err := s.blobBytes(plumbing.NewHash(sha))
	s.mu.Unlock()
	if err != nil || !isHex40(sha) {
		notFound(w)
		return
	}
	if strings.Contains(r.Header.Get("Accept"), "raw") {
		w.Header().Set("Content-Type", "application/vnd.github.raw")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(b)
		return
	}
	enc := base64.StdEncoding.EncodeToString(b)
	var wrapped bytes.Buffer
	for len(enc) > 60 {
		wrapped.WriteString(enc[:60] + "\n")
		enc = enc[60:]
	}
	wrapped.WriteString(enc)
	writeJSON(w, http.StatusOK, map[string]any{
		"sha": sha, "size": len(b), "encoding": "base64", "content": wrapped.String(),
		"url": s.apiURL(r, "git/blobs/%s", sha), "node_id": "B_fake" + sha[:12],
	})
}

func (s *Server) refJSON(r *http.Request, name plumbing.ReferenceName, h plumbing.Hash) map[string]any {
	return map[string]any{
		"ref":     name.String(),
		"node_id": "REF_fake" + base64.RawURLEncoding.EncodeToString([]byte(name)),
		"url":     s.apiURL(r, "git/%s", name),
		"object":  map[string]string{"sha": h.String(), "type": "commit", "url": s.apiURL(r, "git/commits/%s", h)},
	}
}

// getRef serves GET /repos/{o}/{r}/git/ref/{ref}.
func (s *Server) getRef(w http.ResponseWriter, r *http.Request) {
	name := plumbing.ReferenceName("refs/" + r.PathValue("ref"))
	s.mu.Lock()
	ref, err := s.st.Reference(name)
	s.mu.Unlock()
	if err != nil {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, s.refJSON(r, name, ref.Hash()))
}

// updateRef serves PATCH /repos/{o}/{r}/git/refs/{ref}: a non-forced update
// must be a fast-forward.
func (s *Server) updateRef(w http.ResponseWriter, r *http.Request) {
	var in struct {
		SHA   string `json:"sha"`
		Force bool   `json:"force"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	name := plumbing.ReferenceName("refs/" + r.PathValue("ref"))
	s.runRefUpdateHooks()
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.st.Reference(name)
	if err != nil {
		unprocessable(w, "Reference does not exist")
		return
	}
	if typ, ok := s.objectType(plumbing.NewHash(in.SHA)); !isHex40(in.SHA) || !ok || typ != plumbing.CommitObject {
		unprocessable(w, "Object does not exist")
		return
	}
	to := plumbing.NewHash(in.SHA)
	if !in.Force {
		if ff, err := s.isAncestor(cur.Hash(), to); err != nil || !ff {
			unprocessable(w, "Update is not a fast forward")
			return
		}
	}
	if err := s.setRef(name, to); err != nil {
		unprocessable(w, "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, s.refJSON(r, name, to))
}

// isAncestor reports whether a is b or one of its ancestors.
func (s *Server) isAncestor(a, b plumbing.Hash) (bool, error) {
	if a == b {
		return true, nil
	}
	ca, err := object.GetCommit(s.st, a)
	if err != nil {
		return false, err
	}
	cb, err := object.GetCommit(s.st, b)
	if err != nil {
		return false, err
	}
	return ca.IsAncestor(cb)
}
