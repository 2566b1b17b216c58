package fakegithub

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// BlobTextLimit is how much of a blob GraphQL's Blob.text returns before it
// reports isTruncated.
const BlobTextLimit = 512 << 10

type gqlRequest struct {
	Query         string         `json:"query"`
	Variables     map[string]any `json:"variables"`
	OperationName string         `json:"operationName"`
}

type gqlResponse struct {
	Data   any        `json:"data,omitempty"`
	Errors []gqlError `json:"errors,omitempty"`
}

type gqlLocation struct {
	Line   int `json:"line"`
	Column int `json:"column"`
}

type gqlError struct {
	Type       string         `json:"type,omitempty"`
	Path       []any          `json:"path,omitempty"`
	Extensions map[string]any `json:"extensions,omitempty"`
	Locations  []gqlLocation  `json:"locations,omitempty"`
	Message    string         `json:"message"`
}

// fieldError is a resolver's error, reported with the field's path.
type fieldError struct {
	typ, msg string
}

func (e *fieldError) Error() string { return e.msg }

func ferr(typ, format string, args ...any) *fieldError {
	return &fieldError{typ: typ, msg: fmt.Sprintf(format, args...)}
}

// The schema subset the fake serves: type → field → result type. A result
// type of "" is a scalar; "[T]" a list of T. Interfaces list their members.
var schema = map[string]map[string]string{
	"Query": {
		"repository": "Repository", "rateLimit": "RateLimit", "viewer": "User",
	},
	"Mutation": {
		"updateRefs": "UpdateRefsPayload",
	},
	"User":              {"login": "", "id": ""},
	"Node":              {"id": ""},
	"UpdateRefsPayload": {"clientMutationId": ""},
	"RateLimit":         {"limit": "", "remaining": "", "resetAt": "", "cost": "", "used": "", "nodeCount": ""},
	"Repository": {
		"id": "", "name": "", "nameWithOwner": "", "url": "", "isPrivate": "",
		"defaultBranchRef": "Ref", "ref": "Ref", "object": "GitObject",
	},
	"Ref": {"id": "", "name": "", "prefix": "", "target": "GitObject"},
	"GitObject": {
		"id": "", "oid": "", "abbreviatedOid": "", "commitUrl": "", "commitResourcePath": "", "repository": "Repository",
	},
	"Commit": {
		"id": "", "oid": "", "abbreviatedOid": "", "commitUrl": "", "commitResourcePath": "", "repository": "Repository",
		"message": "", "messageHeadline": "", "messageBody": "", "committedDate": "", "authoredDate": "",
		"tree": "Tree", "parents": "CommitConnection", "author": "GitActor", "committer": "GitActor",
		"file": "TreeEntry",
	},
	"CommitConnection": {"totalCount": "", "nodes": "[Commit]", "edges": "[CommitEdge]", "pageInfo": "PageInfo"},
	"CommitEdge":       {"cursor": "", "node": "Commit"},
	"PageInfo":         {"hasNextPage": "", "hasPreviousPage": "", "startCursor": "", "endCursor": ""},
	"GitActor":         {"name": "", "email": "", "date": ""},
	"Tree": {
		"id": "", "oid": "", "abbreviatedOid": "", "commitUrl": "", "commitResourcePath": "", "repository": "Repository",
		"entries": "[TreeEntry]",
	},
	"TreeEntry": {
		"name": "", "path": "", "mode": "", "type": "", "oid": "", "size": "", "extension": "",
		"isGenerated": "", "object": "GitObject", "repository": "Repository",
	},
	"Blob": {
		"id": "", "oid": "", "abbreviatedOid": "", "commitUrl": "", "commitResourcePath": "", "repository": "Repository",
		"text": "", "isBinary": "", "isTruncated": "", "byteSize": "",
	},
}

// possible lists the object types an interface or object type condition
// matches.
var possible = map[string][]string{
	"GitObject": {"Commit", "Tree", "Blob"},
	"Node":      {"Repository", "Ref", "Commit", "Tree", "Blob"},
}

func typeMatches(cond, typ string) bool {
	if cond == "" || cond == typ {
		return true
	}
	for _, t := range possible[cond] {
		if t == typ {
			return true
		}
	}
	return false
}

// graphql serves POST /graphql.
func (s *Server) graphql(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, restError{Message: "Problems parsing JSON"})
		return
	}
	var req gqlRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, restError{Message: "Problems parsing JSON"})
		return
	}
	doc, err := parseGraphQL(req.Query)
	if err != nil {
		e := gqlError{Message: err.Error()}
		if pe, ok := err.(*parseError); ok {
			e.Locations = []gqlLocation{{pe.line, pe.col}}
		}
		writeJSON(w, http.StatusOK, gqlResponse{Errors: []gqlError{e}})
		return
	}
	op, err := doc.operation(req.OperationName)
	if err != nil {
		writeJSON(w, http.StatusOK, gqlResponse{Errors: []gqlError{{Message: err.Error()}}})
		return
	}
	if errs := validate(doc, op, req.Variables); len(errs) > 0 {
		writeJSON(w, http.StatusOK, gqlResponse{Errors: errs})
		return
	}
	if op.kind == "subscription" {
		writeJSON(w, http.StatusOK, gqlResponse{Errors: []gqlError{{Message: "Subscriptions are not supported"}}})
		return
	}
	if op.kind == "mutation" {
		s.runRefUpdateHooks()
	}
	vars := map[string]any{}
	for _, vd := range op.vars {
		if v, ok := req.Variables[vd.name]; ok {
			vars[vd.name] = v
		} else if vd.hasDef {
			vars[vd.name] = vd.def
		}
	}
	x := &executor{s: s, doc: doc, vars: vars}
	var root gqlObject = queryObj{s}
	if op.kind == "mutation" {
		root = mutationObj{s}
	}
	s.mu.Lock()
	data := x.selectionSet(root, op.sel, nil)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, gqlResponse{Data: data, Errors: x.errs})
}

// validate checks fields against the schema and variables against their
// definitions, answering as GitHub does (errors, no data).
func validate(doc *gqlDoc, op *gqlOp, given map[string]any) []gqlError {
	var errs []gqlError
	declared := map[string]gqlVarDef{}
	for _, vd := range op.vars {
		declared[vd.name] = vd
		if _, ok := given[vd.name]; !ok && !vd.hasDef && strings.HasSuffix(vd.typ, "!") {
			errs = append(errs, gqlError{
				Extensions: map[string]any{"code": "variableMismatch"},
				Message:    fmt.Sprintf("Variable $%s of type %s was provided invalid value", vd.name, vd.typ),
			})
		}
	}
	root := "Query"
	if op.kind == "mutation" {
		root = "Mutation"
	}
	var walkValue func(v any, at *gqlSel)
	walkValue = func(v any, at *gqlSel) {
		switch v := v.(type) {
		case gqlVar:
			if _, ok := declared[string(v)]; !ok {
				errs = append(errs, gqlError{
					Extensions: map[string]any{"code": "variableNotDefined", "variableName": string(v)},
					Locations:  []gqlLocation{{at.line, at.col}},
					Message:    fmt.Sprintf("Variable $%s is used by %s but not declared", v, op.name),
				})
			}
		case []any:
			for _, e := range v {
				walkValue(e, at)
			}
		case map[string]any:
			for _, e := range v {
				walkValue(e, at)
			}
		}
	}
	seen := map[string]bool{}
	var walk func(typ string, sels []*gqlSel, path []any)
	walk = func(typ string, sels []*gqlSel, path []any) {
		for _, s := range sels {
			switch {
			case s.spread != "":
				f, ok := doc.frags[s.spread]
				if !ok {
					errs = append(errs, gqlError{Locations: []gqlLocation{{s.line, s.col}}, Message: fmt.Sprintf("Fragment %s was used, but not defined", s.spread)})
					continue
				}
				if seen[f.name] {
					continue
				}
				seen[f.name] = true
				walk(condType(f.typeCond, typ), f.sel, path)
				seen[f.name] = false
			case s.inline:
				if s.typeCond != "" && schema[s.typeCond] == nil {
					errs = append(errs, gqlError{Locations: []gqlLocation{{s.line, s.col}}, Message: fmt.Sprintf("No such type %s, so it can't be a fragment condition", s.typeCond)})
					continue
				}
				walk(condType(s.typeCond, typ), s.sel, path)
			default:
				p := append(append([]any{}, path...), s.key())
				for _, v := range s.args {
					walkValue(v, s)
				}
				if s.name == "__typename" {
					continue
				}
				res, ok := schema[typ][s.name]
				if !ok {
					errs = append(errs, gqlError{
						Path:       p,
						Extensions: map[string]any{"code": "undefinedField", "typeName": typ, "fieldName": s.name},
						Locations:  []gqlLocation{{s.line, s.col}},
						Message:    fmt.Sprintf("Field '%s' doesn't exist on type '%s'", s.name, typ),
					})
					continue
				}
				res = strings.Trim(res, "[]")
				switch {
				case res == "" && s.sel != nil:
					errs = append(errs, gqlError{Path: p, Locations: []gqlLocation{{s.line, s.col}}, Message: fmt.Sprintf("Selections can't be made on scalars (field '%s' returns a scalar)", s.name)})
				case res != "" && s.sel == nil:
					errs = append(errs, gqlError{Path: p, Locations: []gqlLocation{{s.line, s.col}}, Message: fmt.Sprintf("Field must have selections (field '%s' returns %s but has no selections)", s.name, res)})
				case res != "":
					walk(res, s.sel, p)
				}
			}
		}
	}
	walk(root, op.sel, []any{strings.ToLower(root)})
	return errs
}

// condType is the type whose fields a fragment on cond may select inside a
// parent of type typ.
func condType(cond, typ string) string {
	if cond == "" {
		return typ
	}
	return cond
}

// gqlObject is a value of an object type.
type gqlObject interface {
	typeName() string
	resolve(field string, args map[string]any) (any, error)
}

type executor struct {
	s    *Server
	doc  *gqlDoc
	vars map[string]any
	errs []gqlError
}

func (x *executor) selectionSet(obj gqlObject, sels []*gqlSel, path []any) map[string]any {
	out := map[string]any{}
	for _, s := range sels {
		switch {
		case s.spread != "":
			f := x.doc.frags[s.spread]
			if f != nil && typeMatches(f.typeCond, obj.typeName()) {
				merge(out, x.selectionSet(obj, f.sel, path))
			}
		case s.inline:
			if typeMatches(s.typeCond, obj.typeName()) {
				merge(out, x.selectionSet(obj, s.sel, path))
			}
		default:
			key := s.key()
			p := append(append([]any{}, path...), key)
			if s.name == "__typename" {
				out[key] = obj.typeName()
				continue
			}
			v, err := obj.resolve(s.name, x.args(s.args))
			if err != nil {
				e := gqlError{Path: p, Locations: []gqlLocation{{s.line, s.col}}, Message: err.Error()}
				if fe, ok := err.(*fieldError); ok {
					e.Type = fe.typ
				}
				x.errs = append(x.errs, e)
				out[key] = nil
				continue
			}
			val := x.complete(v, s.sel, p)
			if prev, ok := out[key].(map[string]any); ok {
				if m, ok := val.(map[string]any); ok {
					merge(prev, m)
					continue
				}
			}
			out[key] = val
		}
	}
	return out
}

func (x *executor) complete(v any, sel []*gqlSel, path []any) any {
	switch v := v.(type) {
	case nil:
		return nil
	case gqlObject:
		return x.selectionSet(v, sel, path)
	case []gqlObject:
		list := make([]any, len(v))
		for i, o := range v {
			list[i] = x.selectionSet(o, sel, append(append([]any{}, path...), i))
		}
		return list
	default:
		return v
	}
}

func merge(dst, src map[string]any) {
	for k, v := range src {
		if a, ok := dst[k].(map[string]any); ok {
			if b, ok := v.(map[string]any); ok {
				merge(a, b)
				continue
			}
		}
		dst[k] = v
	}
}

// args substitutes variables into argument values.
func (x *executor) args(in map[string]any) map[string]any {
	out := make(map[string]any, len(in))
	for k, v := range in {
		out[k] = x.subst(v)
	}
	return out
}

func (x *executor) subst(v any) any {
	switch v := v.(type) {
	case gqlVar:
		return x.vars[string(v)]
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = x.subst(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = x.subst(e)
		}
		return out
	}
	return v
}

func argString(args map[string]any, name string) (string, bool) {
	switch v := args[name].(type) {
	case string:
		return v, true
	case gqlEnum:
		return string(v), true
	}
	return "", false
}

func argInt(args map[string]any, name string) (int, bool) {
	switch v := args[name].(type) {
	case int64:
		return int(v), true
	case float64:
		return int(v), true
	case json.Number:
		n, err := v.Int64()
		return int(n), err == nil
	}
	return 0, false
}

func argBool(args map[string]any, name string) bool {
	b, _ := args[name].(bool)
	return b
}

// --- resolvers (run with s.mu held) ---

type queryObj struct{ s *Server }

func (queryObj) typeName() string { return "Query" }

func (q queryObj) resolve(field string, args map[string]any) (any, error) {
	s := q.s
	switch field {
	case "repository":
		owner, _ := argString(args, "owner")
		name, _ := argString(args, "name")
		if !strings.EqualFold(owner, s.owner) || !strings.EqualFold(name, s.repo) {
			return nil, ferr("NOT_FOUND", "Could not resolve to a Repository with the name '%s/%s'.", owner, name)
		}
		return repoObj{s}, nil
	case "rateLimit":
		return mapObj{"RateLimit", map[string]any{
			"limit": s.rate.limit, "remaining": s.rate.remaining, "used": s.rate.limit - s.rate.remaining,
			"cost": 1, "nodeCount": 1, "resetAt": s.rate.reset.UTC().Format(time.RFC3339),
		}}, nil
	case "viewer":
		return mapObj{"User", map[string]any{"login": "fake-user", "id": "U_fake"}}, nil
	}
	return nil, ferr("", "unknown field %s", field)
}

// mapObj is an object whose fields are plain values.
type mapObj struct {
	typ    string
	fields map[string]any
}

func (m mapObj) typeName() string { return m.typ }
func (m mapObj) resolve(field string, _ map[string]any) (any, error) {
	return m.fields[field], nil
}

type repoObj struct{ s *Server }

func (repoObj) typeName() string { return "Repository" }

func (r repoObj) resolve(field string, args map[string]any) (any, error) {
	s := r.s
	switch field {
	case "id":
		return s.repoID, nil
	case "name":
		return s.repo, nil
	case "nameWithOwner":
		return s.owner + "/" + s.repo, nil
	case "url":
		return s.RepoURL(), nil
	case "isPrivate":
		return true, nil
	case "defaultBranchRef":
		return s.refObject(plumbing.NewBranchReferenceName(s.branch)), nil
	case "ref":
		q, ok := argString(args, "qualifiedName")
		if !ok {
			return nil, ferr("", "Argument 'qualifiedName' on Field 'ref' has an invalid value")
		}
		if strings.HasPrefix(q, "refs/") {
			return s.refObject(plumbing.ReferenceName(q)), nil
		}
		for _, n := range []plumbing.ReferenceName{plumbing.NewBranchReferenceName(q), plumbing.NewTagReferenceName(q)} {
			if o := s.refObject(n); o != nil {
				return o, nil
			}
		}
		return nil, nil
	case "object":
		if oid, ok := argString(args, "oid"); ok {
			if !isHex40(oid) {
				return nil, nil
			}
			return s.gitObject(plumbing.NewHash(oid), ""), nil
		}
		expr, ok := argString(args, "expression")
		if !ok {
			return nil, ferr("", "Argument 'expression' or 'oid' is required on Field 'object'")
		}
		return s.expression(expr), nil
	}
	return nil, ferr("", "unknown field %s", field)
}

// refObject returns the Ref object for name, or nil (not a nil interface
// holding a nil pointer) when it does not exist.
func (s *Server) refObject(name plumbing.ReferenceName) gqlObject {
	ref, err := s.st.Reference(name)
	if err != nil {
		return nil
	}
	return refObj{s, name, ref.Hash()}
}

// expression resolves "rev", "rev:path" (rev a SHA, branch or ref name).
func (s *Server) expression(expr string) gqlObject {
	rev, p, hasPath := strings.Cut(expr, ":")
	var h plumbing.Hash
	switch {
	case isHex40(rev):
		h = plumbing.NewHash(rev)
	default:
		c, err := s.resolveCommit(rev)
		if err != nil {
			return nil
		}
		h = c.Hash
	}
	if !hasPath {
		return s.gitObject(h, "")
	}
	c, err := object.GetCommit(s.st, h)
	if err != nil {
		return nil
	}
	e, err := s.entryAt(c.TreeHash, p)
	if err != nil {
		return nil
	}
	return s.gitObject(e.Hash, strings.Trim(p, "/"))
}

// gitObject returns the Commit, Tree or Blob object h, or nil.
func (s *Server) gitObject(h plumbing.Hash, path string) gqlObject {
	typ, ok := s.objectType(h)
	if !ok {
		return nil
	}
	switch typ {
	case plumbing.CommitObject:
		c, err := object.GetCommit(s.st, h)
		if err != nil {
			return nil
		}
		return commitObj{s, c}
	case plumbing.TreeObject:
		return treeObj{s, h, path}
	case plumbing.BlobObject:
		return blobObj{s, h}
	}
	return nil
}

type refObj struct {
	s    *Server
	name plumbing.ReferenceName
	hash plumbing.Hash
}

func (refObj) typeName() string { return "Ref" }

func (r refObj) resolve(field string, _ map[string]any) (any, error) {
	switch field {
	case "id":
		return fmt.Sprintf("REF_fake%x", []byte(r.name)), nil
	case "name":
		return r.name.Short(), nil
	case "prefix":
		return strings.TrimSuffix(r.name.String(), r.name.Short()), nil
	case "target":
		return r.s.gitObject(r.hash, ""), nil
	}
	return nil, ferr("", "unknown field %s", field)
}

// objectFields answers the GitObject interface's fields.
func (s *Server) objectFields(field string, h plumbing.Hash, kind string) (any, bool) {
	switch field {
	case "id":
		return kind[:1] + "_fake" + h.String(), true
	case "oid":
		return h.String(), true
	case "abbreviatedOid":
		return h.String()[:7], true
	case "commitUrl":
		return s.RepoURL() + "/commit/" + h.String(), true
	case "commitResourcePath":
		return "/" + s.owner + "/" + s.repo + "/commit/" + h.String(), true
	case "repository":
		return repoObj{s}, true
	}
	return nil, false
}

type commitObj struct {
	s *Server
	c *object.Commit
}

func (commitObj) typeName() string { return "Commit" }

func (o commitObj) resolve(field string, args map[string]any) (any, error) {
	s, c := o.s, o.c
	if v, ok := s.objectFields(field, c.Hash, "C"); ok {
		return v, nil
	}
	switch field {
	case "message":
		return c.Message, nil
	case "messageHeadline":
		head, _, _ := strings.Cut(c.Message, "\n")
		return head, nil
	case "messageBody":
		_, body, _ := strings.Cut(c.Message, "\n")
		return strings.TrimLeft(body, "\n"), nil
	case "committedDate":
		return c.Committer.When.Format(time.RFC3339), nil
	case "authoredDate":
		return c.Author.When.Format(time.RFC3339), nil
	case "author":
		return actorObj(c.Author), nil
	case "committer":
		return actorObj(c.Committer), nil
	case "tree":
		return treeObj{s, c.TreeHash, ""}, nil
	case "parents":
		var nodes []gqlObject
		for _, p := range c.ParentHashes {
			pc, err := object.GetCommit(s.st, p)
			if err != nil {
				return nil, ferr("", "parent %s: %v", p, err)
			}
			nodes = append(nodes, commitObj{s, pc})
		}
		return connection(nodes, args)
	case "file":
		p, ok := argString(args, "path")
		if !ok {
			return nil, ferr("", "Argument 'path' on Field 'file' has an invalid value")
		}
		p = strings.Trim(p, "/")
		if p == "" {
			return nil, nil
		}
		e, err := s.entryAt(c.TreeHash, p)
		if err != nil {
			return nil, nil
		}
		return treeEntryObj{s, e, p}, nil
	}
	return nil, ferr("", "unknown field %s", field)
}

func actorObj(sig object.Signature) gqlObject {
	return mapObj{"GitActor", map[string]any{
		"name": sig.Name, "email": sig.Email, "date": sig.When.Format(time.RFC3339),
	}}
}

// connection pages nodes as GitHub does; first or last is required.
func connection(nodes []gqlObject, args map[string]any) (any, error) {
	first, hasFirst := argInt(args, "first")
	last, hasLast := argInt(args, "last")
	if !hasFirst && !hasLast {
		return nil, ferr("", "You must provide a `first` or `last` value to properly paginate the `parents` connection.")
	}
	if (hasFirst && (first < 0 || first > 100)) || (hasLast && (last < 0 || last > 100)) {
		return nil, ferr("", "Requesting %d records on the `parents` connection exceeds the `first` limit of 100 records.", max(first, last))
	}
	total := len(nodes)
	start, end := 0, total
	if hasFirst && first < end {
		end = first
	}
	if hasLast && end-last > start {
		start = end - last
	}
	page := nodes[start:end]
	var edges []gqlObject
	for i, n := range page {
		edges = append(edges, mapObj{"CommitEdge", map[string]any{"cursor": fmt.Sprintf("cursor:%d", start+i+1), "node": n}})
	}
	info := map[string]any{"hasNextPage": end < total, "hasPreviousPage": start > 0, "startCursor": nil, "endCursor": nil}
	if len(page) > 0 {
		info["startCursor"] = fmt.Sprintf("cursor:%d", start+1)
		info["endCursor"] = fmt.Sprintf("cursor:%d", end)
	}
	if page == nil {
		page = []gqlObject{}
	}
	if edges == nil {
		edges = []gqlObject{}
	}
	return mapObj{"CommitConnection", map[string]any{
		"totalCount": total, "nodes": page, "edges": edges, "pageInfo": mapObj{"PageInfo", info},
	}}, nil
}

type treeObj struct {
	s    *Server
	h    plumbing.Hash
	path string
}

func (treeObj) typeName() string { return "Tree" }

func (o treeObj) resolve(field string, _ map[string]any) (any, error) {
	if v, ok := o.s.objectFields(field, o.h, "T"); ok {
		return v, nil
	}
	if field == "entries" {
		t, err := object.GetTree(o.s.st, o.h)
		if err != nil {
			return nil, ferr("", "tree %s: %v", o.h, err)
		}
		entries := make([]gqlObject, 0, len(t.Entries))
		sorted := append([]object.TreeEntry{}, t.Entries...)
		sort.Sort(object.TreeEntrySorter(sorted))
		for _, e := range sorted {
			p := e.Name
			if o.path != "" {
				p = o.path + "/" + e.Name
			}
			entries = append(entries, treeEntryObj{o.s, e, p})
		}
		return entries, nil
	}
	return nil, ferr("", "unknown field %s", field)
}

type treeEntryObj struct {
	s    *Server
	e    object.TreeEntry
	path string
}

func (treeEntryObj) typeName() string { return "TreeEntry" }

func (o treeEntryObj) resolve(field string, _ map[string]any) (any, error) {
	e := o.e
	switch field {
	case "name":
		return e.Name, nil
	case "path":
		return o.path, nil
	case "mode":
		return int(e.Mode), nil
	case "type":
		switch e.Mode {
		case filemode.Dir:
			return "tree", nil
		case filemode.Submodule:
			return "commit", nil
		}
		return "blob", nil
	case "oid":
		return e.Hash.String(), nil
	case "size":
		if e.Mode == filemode.Dir || e.Mode == filemode.Submodule {
			return 0, nil
		}
		o, err := o.s.st.EncodedObject(plumbing.BlobObject, e.Hash)
		if err != nil {
			return 0, nil
		}
		return int(o.Size()), nil
	case "extension":
		if i := strings.LastIndexByte(e.Name, '.'); i > 0 {
			return e.Name[i:], nil
		}
		return nil, nil
	case "isGenerated":
		return false, nil
	case "object":
		if e.Mode == filemode.Submodule {
			return nil, nil
		}
		return o.s.gitObject(e.Hash, o.path), nil
	case "repository":
		return repoObj{o.s}, nil
	}
	return nil, ferr("", "unknown field %s", field)
}

type blobObj struct {
	s *Server
	h plumbing.Hash
}

func (blobObj) typeName() string { return "Blob" }

func (o blobObj) resolve(field string, _ map[string]any) (any, error) {
	if v, ok := o.s.objectFields(field, o.h, "B"); ok {
		return v, nil
	}
	b, err := o.s.blobBytes(o.h)
	if err != nil {
		return nil, ferr("", "blob %s: %v", o.h, err)
	}
	switch field {
	case "byteSize":
		return len(b), nil
	case "isBinary":
		return isBinary(b), nil
	case "isTruncated":
		return len(b) > BlobTextLimit, nil
	case "text":
		if isBinary(b) {
			return nil, nil
		}
		if len(b) > BlobTextLimit {
			b = b[:BlobTextLimit]
		}
		return string(b), nil
	}
	return nil, ferr("", "unknown field %s", field)
}

type mutationObj struct{ s *Server }

func (mutationObj) typeName() string { return "Mutation" }

func (m mutationObj) resolve(field string, args map[string]any) (any, error) {
	if field != "updateRefs" {
		return nil, ferr("", "unknown field %s", field)
	}
	return m.s.updateRefs(args)
}

// updateRefs applies every RefUpdate or none, as GitHub's mutation does.
func (s *Server) updateRefs(args map[string]any) (any, error) {
	input, ok := args["input"].(map[string]any)
	if !ok {
		return nil, ferr("", "Argument 'input' on Field 'updateRefs' has an invalid value (null). Expected type 'UpdateRefsInput!'.")
	}
	repoID, _ := input["repositoryId"].(string)
	if repoID != s.repoID {
		return nil, ferr("NOT_FOUND", "Could not resolve to a node with the global id of '%s'", repoID)
	}
	updates, _ := input["refUpdates"].([]any)
	if len(updates) == 0 {
		return nil, ferr("UNPROCESSABLE", "refUpdates must not be empty")
	}
	type planned struct {
		name  plumbing.ReferenceName
		after plumbing.Hash
	}
	var plan []planned
	for _, u := range updates {
		m, _ := u.(map[string]any)
		name, _ := m["name"].(string)
		after, _ := m["afterOid"].(string)
		before, hasBefore := m["beforeOid"].(string)
		force, _ := m["force"].(bool)
		if !strings.HasPrefix(name, "refs/") || strings.Contains(name, "..") || strings.HasSuffix(name, "/") {
			return nil, ferr("UNPROCESSABLE", "%q is not a valid fully qualified ref name", name)
		}
		if !isHex40(after) {
			return nil, ferr("UNPROCESSABLE", "afterOid %q is not a valid object id", after)
		}
		ah := plumbing.NewHash(after)
		if !ah.IsZero() {
			if typ, ok := s.objectType(ah); !ok || typ != plumbing.CommitObject {
				return nil, ferr("UNPROCESSABLE", "Object %s does not exist", after)
			}
		}
		var cur plumbing.Hash
		if ref, err := s.st.Reference(plumbing.ReferenceName(name)); err == nil {
			cur = ref.Hash()
		}
		if hasBefore && before != "" && plumbing.NewHash(before) != cur {
			return nil, ferr(s.staleTyp, "Expected %s to point to %s but it points to %s.", name, before, cur)
		}
		if !force && !cur.IsZero() && !ah.IsZero() {
			if ff, err := s.isAncestor(cur, ah); err != nil || !ff {
				return nil, ferr("UNPROCESSABLE", "Update of %s is not a fast forward.", name)
			}
		}
		plan = append(plan, planned{plumbing.ReferenceName(name), ah})
	}
	for _, p := range plan {
		var err error
		if p.after.IsZero() {
			err = s.st.RemoveReference(p.name)
		} else {
			err = s.setRef(p.name, p.after)
		}
		if err != nil {
			return nil, ferr("", "update %s: %v", p.name, err)
		}
	}
	cm, _ := input["clientMutationId"].(string)
	var cmv any
	if cm != "" {
		cmv = cm
	}
	return mapObj{"UpdateRefsPayload", map[string]any{"clientMutationId": cmv}}, nil
}
