// Package examples holds the demo GitOps repository and configuration that
// `make run` serves (SPEC §7).
package examples

import "embed"

// GitOps is the demo GitOps repository's content, rooted at "gitops".
//
//go:embed all:gitops
var GitOps embed.FS

// Config is the demo configuration (examples/pinroll.yaml).
//
//go:embed pinroll.yaml
var Config []byte
