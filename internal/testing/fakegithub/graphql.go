package fakegithub

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/validator"
)

//go:embed schema.graphql
var schemaSDL string

// schema is the GitHub subset the fake serves, loaded once.
var schema = gqlparser.MustLoadSchema(&ast.Source{Name: "schema.graphql", Input: schemaSDL})

type gqlRequest struct {
	Query         string         `json:"query"`
	Variables     map[string]any `json:"variables"`
	OperationName string         `json:"operationName"`
}

type gqlResponse struct {
	Data   any        `json:"data,omitempty"`
	Errors []gqlError `json:"errors,omitempty"`
}

// gqlError is one entry of "errors" in GitHub's shape: a type for the
// resolvers' errors (NOT_FOUND, STALE_DATA, ...), none for query errors.
type gqlError struct {
	Type      string              `json:"type,omitempty"`
	Path      []any               `json:"path,omitempty"`
	Locations []gqlerror.Location `json:"locations,omitempty"`
	Message   string              `json:"message"`
}

// fieldError is a resolver's error, reported with the field's path.
type fieldError struct {
	typ, msg string
}

func (e *fieldError) Error() string { return e.msg }

func ferr(typ, format string, args ...any) *fieldError {
	return &fieldError{typ: typ, msg: fmt.Sprintf(format, args...)}
}

// graphql serves POST /graphql: gqlparser parses and validates the query
// and coerces its variables (a failure answers 200 with errors and no data,
// as GitHub does), then the operation runs over the resolvers' objects.
func (s *Server) graphql(w http.ResponseWriter, r *http.Request) {
	var req gqlRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, restError{Message: "Problems parsing JSON"})
		return
	}
	doc, errs := gqlparser.LoadQueryWithRules(schema, req.Query, nil)
	if len(errs) > 0 {
		writeJSON(w, http.StatusOK, gqlResponse{Errors: queryErrors(errs)})
		return
	}
	op := doc.Operations.ForName(req.OperationName)
	if op == nil {
		msg := fmt.Sprintf("No operation named %q", req.OperationName)
		if req.OperationName == "" {
			msg = "An operation name is required when the document has several operations"
		}
		writeJSON(w, http.StatusOK, gqlResponse{Errors: []gqlError{{Message: msg}}})
		return
	}
	vars, err := validator.VariableValues(schema, op, req.Variables)
	if err != nil {
		e := gqlerror.WrapIfUnwrapped(err)
		writeJSON(w, http.StatusOK, gqlResponse{Errors: []gqlError{{Message: e.Path.String() + " " + e.Message}}})
		return
	}
	root := s.query()
	if op.Operation == ast.Mutation {
		s.runRefUpdateHooks()
		root = s.mutation()
	}
	x := &executor{vars: vars}
	s.mu.Lock()
	data := x.object(root, op.SelectionSet, nil)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, gqlResponse{Data: data, Errors: x.errs})
}

func queryErrors(list gqlerror.List) []gqlError {
	out := make([]gqlError, len(list))
	for i, e := range list {
		out[i] = gqlError{Message: e.Message, Locations: e.Locations}
	}
	return out
}

// obj is one GraphQL object: "__typename" names its type, every other key
// one of its fields, as a value (a scalar, obj, []obj or nil) or as a
// resolver computed only when the query selects the field.
type obj map[string]any

// resolver computes a field that takes arguments.
type resolver func(args map[string]any) (any, error)

// executor runs one validated operation (GraphQL spec §6).
type executor struct {
	vars map[string]any
	errs []gqlError
}

// object answers sels on o. It is nil (untyped) when a non-null field of o
// is null, so the null propagates to the parent as the spec says.
func (x *executor) object(o obj, sels ast.SelectionSet, path []any) any {
	typ, _ := o["__typename"].(string)
	out := map[string]any{}
	for _, fields := range x.collect(typ, sels, nil) {
		f := fields[0]
		p := append(path[:len(path):len(path)], f.Alias)
		if f.Name == "__typename" {
			out[f.Alias] = typ
			continue
		}
		v, err := x.resolve(o, f)
		if v == nil && err == nil && f.Definition.Type.NonNull {
			err = ferr("", "Cannot return null for non-nullable field %s.%s", typ, f.Name)
		}
		if err != nil {
			e := gqlError{Path: p, Message: err.Error(), Locations: []gqlerror.Location{{Line: f.Position.Line, Column: f.Position.Column}}}
			if fe, ok := err.(*fieldError); ok {
				e.Type = fe.typ
			}
			x.errs = append(x.errs, e)
		}
		var sub ast.SelectionSet
		for _, g := range fields {
			sub = append(sub, g.SelectionSet...)
		}
		val := x.complete(v, f.Definition.Type, sub, p)
		if val == nil && f.Definition.Type.NonNull {
			return nil
		}
		out[f.Alias] = val
	}
	return out
}

// resolve is o's field f: its value, or what its resolver computes.
func (x *executor) resolve(o obj, f *ast.Field) (v any, err error) {
	v, ok := o[f.Name]
	if !ok {
		return nil, ferr("", "the fake GitHub does not serve %s.%s", o["__typename"], f.Name)
	}
	if fn, ok := v.(resolver); ok {
		v, err = fn(f.ArgumentMap(x.vars))
	}
	if o, ok := v.(obj); ok && o == nil {
		return nil, err // a missing object is null
	}
	return v, err
}

// complete turns a resolved value into its answer: objects recurse into
// their selections, a list is nil if a non-null element is.
func (x *executor) complete(v any, typ *ast.Type, sels ast.SelectionSet, path []any) any {
	switch v := v.(type) {
	case obj:
		if v == nil { // a missing list element
			return nil
		}
		return x.object(v, sels, path)
	case []obj:
		list := make([]any, len(v))
		for i, o := range v {
			if list[i] = x.complete(o, typ.Elem, sels, append(path[:len(path):len(path)], i)); list[i] == nil && typ.Elem.NonNull {
				return nil
			}
		}
		return list
	}
	return v
}

// collect groups the fields sels selects on an object of type typ by
// response key, in order, through fragments whose type condition matches
// and skipping what @skip/@include leave out.
func (x *executor) collect(typ string, sels ast.SelectionSet, groups [][]*ast.Field) [][]*ast.Field {
	for _, sel := range sels {
		switch sel := sel.(type) {
		case *ast.Field:
			if x.skipped(sel.Directives) {
				continue
			}
			i := 0
			for i < len(groups) && groups[i][0].Alias != sel.Alias {
				i++
			}
			if i == len(groups) {
				groups = append(groups, nil)
			}
			groups[i] = append(groups[i], sel)
		case *ast.InlineFragment:
			if !x.skipped(sel.Directives) && applies(sel.TypeCondition, typ) {
				groups = x.collect(typ, sel.SelectionSet, groups)
			}
		case *ast.FragmentSpread:
			if !x.skipped(sel.Directives) && applies(sel.Definition.TypeCondition, typ) {
				groups = x.collect(typ, sel.Definition.SelectionSet, groups)
			}
		}
	}
	return groups
}

func (x *executor) skipped(dirs ast.DirectiveList) bool {
	if d := dirs.ForName("skip"); d != nil && d.ArgumentMap(x.vars)["if"] == true {
		return true
	}
	d := dirs.ForName("include")
	return d != nil && d.ArgumentMap(x.vars)["if"] == false
}

// applies reports whether a fragment on cond applies to an object of type typ.
func applies(cond, typ string) bool {
	if cond == "" || cond == typ {
		return true
	}
	for _, d := range schema.GetPossibleTypes(schema.Types[cond]) {
		if d.Name == typ {
			return true
		}
	}
	return false
}

func argInt(args map[string]any, name string) (int, bool) {
	switch v := args[name].(type) {
	case int64:
		return int(v), true
	case float64:
		return int(v), true
	}
	return 0, false
}
