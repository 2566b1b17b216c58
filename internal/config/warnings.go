package config

import "fmt"

// Warnings returns what in a valid configuration is likely a mistake, one
// sentence each with the fix. pinroll starts anyway: entry points log them at
// load, and `pinroll check` prints them.
//
// Today: a `commit: append` track environment and a rolling one on the same
// branch defeat the rolling commit (SPEC §6.2). The append environment's
// ordinary commit lands on top of the rolling one, so the next rolling pin can
// no longer amend and appends a new rolling commit: every push makes two
// commits instead of one.
func (c *Config) Warnings() []string {
	var out []string
	for i, a := range c.Environments {
		if a.IsRelease() || a.Rolling() {
			continue
		}
		for j, r := range c.Environments {
			if j == i || r.IsRelease() || !r.Rolling() || r.Branch != a.Branch {
				continue
			}
			out = append(out, fmt.Sprintf(
				"environments[%d] %q (commit: append) and environments[%d] %q (commit: rolling) both write branch %s: each append commit buries the rolling commit, so every push makes two commits; use one commit mode per branch, or give %q its own branch",
				i, a.Name, j, r.Name, a.Branch, a.Name))
			break
		}
	}
	return out
}
