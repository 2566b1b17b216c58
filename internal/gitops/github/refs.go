package github

import (
	"context"
	"fmt"
	"strings"

	"github.com/pinroll/pinroll/internal/gitops"
)

// ListRefs implements [gitops.Repo] with GraphQL's refs(refPrefix:), one
// query per 100 refs.
func (r *Repo) ListRefs(ctx context.Context, prefix string) (map[string]string, error) {
	out, err := r.listRefs(ctx, prefix)
	if err != nil {
		return nil, scrub(fmt.Errorf("github: list refs %s of %s: %w", prefix, r, err), r.secrets)
	}
	return out, nil
}

func (r *Repo) listRefs(ctx context.Context, prefix string) (map[string]string, error) {
	if !strings.HasPrefix(prefix, "refs/") || !strings.HasSuffix(prefix, "/") {
		return nil, fmt.Errorf("%w: prefix %q: want refs/…/", gitops.ErrInvalid, prefix)
	}
	out := map[string]string{}
	var after *string
	for {
		var repo struct {
			Refs *struct {
				PageInfo struct {
					HasNextPage bool   `json:"hasNextPage"`
					EndCursor   string `json:"endCursor"`
				} `json:"pageInfo"`
				Nodes []struct {
					Name   string `json:"name"`
					Target *struct {
						OID string `json:"oid"`
					} `json:"target"`
				} `json:"nodes"`
			} `json:"refs"`
		}
		_, err := r.queryRepository(ctx, `query PinrollRefs($owner: String!, $name: String!, $prefix: String!, $after: String) {
  repository(owner: $owner, name: $name) {
    id
    refs(refPrefix: $prefix, first: 100, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes { name target { oid } }
    }
  }
}`, map[string]any{"owner": r.owner, "name": r.name, "prefix": prefix, "after": after}, &repo)
		if err != nil {
			return nil, err
		}
		if repo.Refs == nil {
			return out, nil
		}
		for _, n := range repo.Refs.Nodes {
			if n.Target != nil {
				out[prefix+n.Name] = n.Target.OID
			}
		}
		if !repo.Refs.PageInfo.HasNextPage {
			return out, nil
		}
		c := repo.Refs.PageInfo.EndCursor
		after = &c
	}
}

// UpdateRefs implements [gitops.Repo] with one GraphQL updateRefs mutation,
// which GitHub applies atomically: a ref to create has the all-zero
// beforeOid, a ref to delete the all-zero afterOid, and a ref that exists is
// moved with force (an amend or a squash is no fast-forward). When GitHub
// refuses, one more query tells a lost race (ErrConflict) from updates that
// had already landed (a retried call: success); a refused force-move of a
// protected branch is ErrProtected.
func (r *Repo) UpdateRefs(ctx context.Context, updates []gitops.RefUpdate) error {
	if err := r.updateRefs(ctx, updates); err != nil {
		return scrub(fmt.Errorf("github: update refs of %s: %w", r, err), r.secrets)
	}
	return nil
}

func (r *Repo) updateRefs(ctx context.Context, updates []gitops.RefUpdate) error {
	if len(updates) == 0 {
		return nil
	}
	var input []map[string]any
	for _, u := range updates {
		if !strings.HasPrefix(u.Ref, "refs/") || strings.Contains(u.Ref, "..") {
			return fmt.Errorf("%w: ref %q", gitops.ErrInvalid, u.Ref)
		}
		before, after := orZero(u.From), orZero(u.To)
		if !isSHA(before) || !isSHA(after) {
			return fmt.Errorf("%w: ref %q: want 40-hex SHAs, got %q and %q", gitops.ErrInvalid, u.Ref, u.From, u.To)
		}
		input = append(input, map[string]any{
			"name": u.Ref, "beforeOid": before, "afterOid": after, "force": u.From != "",
		})
	}
	id, err := r.repositoryID(ctx)
	if err != nil {
		return fmt.Errorf("look up repository id: %w", err)
	}
	var data struct {
		UpdateRefs *struct {
			ClientMutationID *string `json:"clientMutationId"`
		} `json:"updateRefs"`
	}
	reqID, gerrs, err := r.graphql(ctx, `mutation PinrollUpdateRefs($input: UpdateRefsInput!) {
  updateRefs(input: $input) { clientMutationId }
}`, map[string]any{"input": map[string]any{"repositoryId": id, "refUpdates": input}}, &data)
	if err != nil {
		return err
	}
	if gerrs == nil && data.UpdateRefs != nil {
		return nil
	}
	if gerrs == nil {
		gerrs = &gqlErrors{errs: []gqlError{{Message: "updateRefs answered null without errors"}}, requestID: reqID}
	}
	if gerrs.has("NOT_FOUND") {
		r.setRepoID("")
	}
	for _, e := range gerrs.errs {
		m := strings.ToLower(e.Message)
		if strings.Contains(m, "cannot force-push") || strings.Contains(m, "protected") {
			return fmt.Errorf("%w: %w", gitops.ErrProtected, gerrs)
		}
	}
	// GitHub refused: see where the refs are now.
	cur, err := r.refOIDs(ctx, updates)
	if err != nil {
		if gerrs.has("STALE_DATA") {
			return fmt.Errorf("%w: %w", gitops.ErrConflict, gerrs)
		}
		return fmt.Errorf("%w (and checking the refs failed: %w)", gerrs, err)
	}
	landed := true
	for i, u := range updates {
		if cur[i] != u.To {
			landed = false
		}
	}
	if landed {
		return nil
	}
	for i, u := range updates {
		if cur[i] != u.From {
			return fmt.Errorf("%w: %s is at %q, not %q: %w", gitops.ErrConflict, u.Ref, cur[i], u.From, gerrs)
		}
	}
	return gerrs
}

// refOIDs returns where each ref of updates points now ("" when absent), in
// one query.
func (r *Repo) refOIDs(ctx context.Context, updates []gitops.RefUpdate) ([]string, error) {
	var b strings.Builder
	b.WriteString("query PinrollRefOIDs($owner: String!, $name: String!")
	vars := map[string]any{"owner": r.owner, "name": r.name}
	for i, u := range updates {
		fmt.Fprintf(&b, ", $r%d: String!", i)
		vars[fmt.Sprintf("r%d", i)] = u.Ref
	}
	b.WriteString(") {\n  repository(owner: $owner, name: $name) {\n")
	for i := range updates {
		fmt.Fprintf(&b, "    r%d: ref(qualifiedName: $r%d) { target { oid } }\n", i, i)
	}
	b.WriteString("  }\n}\n")
	var repo map[string]*struct {
		Target *struct {
			OID string `json:"oid"`
		} `json:"target"`
	}
	if _, err := r.queryRepository(ctx, b.String(), vars, &repo); err != nil {
		return nil, err
	}
	out := make([]string, len(updates))
	for i := range updates {
		if ref := repo[fmt.Sprintf("r%d", i)]; ref != nil && ref.Target != nil {
			out[i] = ref.Target.OID
		}
	}
	return out, nil
}

func orZero(sha string) string {
	if sha == "" {
		return zeroOID
	}
	return sha
}
