package gar

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/pinroll/pinroll/internal/logging"
)

// ErrInvalidReference is wrapped by every error about a malformed image
// reference, repository path, tag or digest.
var ErrInvalidReference = errors.New("invalid image reference")

// The grammar below follows the distribution reference grammar
// (github.com/distribution/reference), restricted to what Artifact Registry
// produces: a registry host, lowercase path components, an optional tag and an
// optional sha256 digest.
var (
	// hostRE is a DNS name or IPv4 address, or a bracketed IPv6 address, with
	// an optional port.
	hostRE = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?$`)
	// componentRE is one path component of a repository. Upper case is
	// accepted although registries use lower case: SPEC §3's own example
	// repository is .../PROJECT/backend/server, and a user who copies it must
	// not have every notification rejected.
	componentRE = regexp.MustCompile(`^[A-Za-z0-9]+(?:(?:[._]|__|-+)[A-Za-z0-9]+)*$`)
	// tagRE is a docker tag.
	tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	// digestRE is the only digest form pinroll accepts.
	digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

// maxNameLength bounds a repository (host and path), as the distribution
// reference grammar does.
const maxNameLength = 255

// ParseReference splits a full image reference HOST/PATH[:TAG][@sha256:HEX],
// such as asia-northeast2-docker.pkg.dev/p/backend/server:latest, into the
// repository (HOST/PATH, no tag, no digest), the tag and the digest; tag and
// digest are "" when absent. The host is required (it must contain a '.' or a
// ':' or be "localhost"), path components are letters and digits with . _ - separators, and the only digest
// accepted is sha256 with 64 lowercase hex digits. Errors wrap
// [ErrInvalidReference].
func ParseReference(ref string) (repository, tag, digest string, err error) {
	name := ref
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		name, digest = ref[:i], ref[i+1:]
		if err := ValidateDigest(digest); err != nil {
			return "", "", "", fmt.Errorf("reference %s: %w", logging.Quote(ref), err)
		}
	}
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name, tag = name[:i], name[i+1:]
		if err := ValidateTag(tag); err != nil {
			return "", "", "", fmt.Errorf("reference %s: %w", logging.Quote(ref), err)
		}
	}
	if err := ValidateRepository(name); err != nil {
		return "", "", "", fmt.Errorf("reference %s: %w", logging.Quote(ref), err)
	}
	return name, tag, digest, nil
}

// ValidateRepository reports whether repository is a well-formed repository
// without tag or digest: HOST/COMPONENT[/COMPONENT...]. Errors wrap
// [ErrInvalidReference].
func ValidateRepository(repository string) error {
	if repository == "" {
		return fmt.Errorf("%w: empty repository", ErrInvalidReference)
	}
	if len(repository) > maxNameLength {
		return fmt.Errorf("%w: repository longer than %d characters", ErrInvalidReference, maxNameLength)
	}
	host, path, ok := strings.Cut(repository, "/")
	if !ok || path == "" {
		return fmt.Errorf("%w: %s has no registry host or no path", ErrInvalidReference, logging.Quote(repository))
	}
	if !hostRE.MatchString(host) || !(strings.ContainsAny(host, ".:") || host == "localhost") {
		return fmt.Errorf("%w: %s is not a registry host", ErrInvalidReference, logging.Quote(host))
	}
	for c := range strings.SplitSeq(path, "/") {
		if !componentRE.MatchString(c) {
			return fmt.Errorf("%w: path component %s of %s (want letters, digits and . _ - separators)", ErrInvalidReference, logging.Quote(c), logging.Quote(repository))
		}
	}
	return nil
}

// ValidateTag reports whether tag is a well-formed docker tag (letters,
// digits, '_', '.', '-', not starting with '.' or '-', at most 128
// characters). Errors wrap [ErrInvalidReference].
func ValidateTag(tag string) error {
	if !tagRE.MatchString(tag) {
		return fmt.Errorf("%w: tag %s", ErrInvalidReference, logging.Quote(tag))
	}
	return nil
}

// ValidateDigest reports whether digest is "sha256:" followed by 64 lowercase
// hex digits. Errors wrap [ErrInvalidReference].
func ValidateDigest(digest string) error {
	if !digestRE.MatchString(digest) {
		return fmt.Errorf("%w: digest %s (want sha256: and 64 lowercase hex digits)", ErrInvalidReference, logging.Quote(digest))
	}
	return nil
}
