package fakegithub

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A small GraphQL parser: operations, variable definitions, fields with
// aliases and arguments, inline fragments, fragment spreads and definitions,
// directives (parsed, ignored) and every literal kind. Enough for any query a
// client of this fake writes, and strict enough to reject malformed ones the
// way GitHub does (with a parse error).

type gqlDoc struct {
	ops   []*gqlOp
	frags map[string]*gqlFrag
}

type gqlOp struct {
	kind string // query or mutation
	name string
	vars []gqlVarDef
	sel  []*gqlSel
}

type gqlVarDef struct {
	name   string
	typ    string
	def    any
	hasDef bool
}

type gqlFrag struct {
	name     string
	typeCond string
	sel      []*gqlSel
}

// gqlSel is a field, an inline fragment (inline) or a fragment spread.
type gqlSel struct {
	alias, name string
	args        map[string]any
	sel         []*gqlSel
	inline      bool
	typeCond    string
	spread      string
	line, col   int
}

func (s *gqlSel) key() string {
	if s.alias != "" {
		return s.alias
	}
	return s.name
}

// gqlVar is a variable reference inside a value.
type gqlVar string

// gqlEnum is an enum literal.
type gqlEnum string

type token struct {
	kind byte // 'n' name, 's' string, 'i' int, 'f' float, 'p' punctuator, 0 EOF
	val  string
	pos  int
}

func lex(src string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',':
			i++
		case c == '\xef' && strings.HasPrefix(src[i:], "\ufeff"):
			i += 3
		case c == '#':
			for i < len(src) && src[i] != '\n' && src[i] != '\r' {
				i++
			}
		case strings.HasPrefix(src[i:], "..."):
			toks = append(toks, token{'p', "...", i})
			i += 3
		case strings.IndexByte("!$&()=:@[]{}|", c) >= 0:
			toks = append(toks, token{'p', string(c), i})
			i++
		case c == '_' || isLetter(c):
			j := i + 1
			for j < len(src) && (src[j] == '_' || isLetter(src[j]) || isDigit(src[j])) {
				j++
			}
			toks = append(toks, token{'n', src[i:j], i})
			i = j
		case c == '-' || isDigit(c):
			j := i + 1
			for j < len(src) && isDigit(src[j]) {
				j++
			}
			kind := byte('i')
			if j < len(src) && src[j] == '.' {
				kind = 'f'
				j++
				for j < len(src) && isDigit(src[j]) {
					j++
				}
			}
			if j < len(src) && (src[j] == 'e' || src[j] == 'E') {
				kind = 'f'
				j++
				if j < len(src) && (src[j] == '+' || src[j] == '-') {
					j++
				}
				for j < len(src) && isDigit(src[j]) {
					j++
				}
			}
			if src[i:j] == "-" {
				return nil, posErr(src, i, "Parse error on \"-\"")
			}
			toks = append(toks, token{kind, src[i:j], i})
			i = j
		case strings.HasPrefix(src[i:], `"""`):
			end := strings.Index(src[i+3:], `"""`)
			if end < 0 {
				return nil, posErr(src, i, "Unterminated block string")
			}
			toks = append(toks, token{'s', blockString(src[i+3 : i+3+end]), i})
			i += end + 6
		case c == '"':
			var b strings.Builder
			j := i + 1
			for {
				if j >= len(src) || src[j] == '\n' {
					return nil, posErr(src, i, "Unterminated string")
				}
				if src[j] == '"' {
					j++
					break
				}
				if src[j] == '\\' {
					if j+1 >= len(src) {
						return nil, posErr(src, i, "Unterminated string")
					}
					switch e := src[j+1]; e {
					case '"', '\\', '/':
						b.WriteByte(e)
					case 'b':
						b.WriteByte('\b')
					case 'f':
						b.WriteByte('\f')
					case 'n':
						b.WriteByte('\n')
					case 'r':
						b.WriteByte('\r')
					case 't':
						b.WriteByte('\t')
					case 'u':
						if j+6 > len(src) {
							return nil, posErr(src, j, "Bad unicode escape")
						}
						n, err := strconv.ParseUint(src[j+2:j+6], 16, 32)
						if err != nil {
							return nil, posErr(src, j, "Bad unicode escape")
						}
						b.WriteRune(rune(n))
						j += 4
					default:
						return nil, posErr(src, j, "Bad escape")
					}
					j += 2
					continue
				}
				r, size := utf8.DecodeRuneInString(src[j:])
				b.WriteRune(r)
				j += size
			}
			toks = append(toks, token{'s', b.String(), i})
			i = j
		default:
			return nil, posErr(src, i, fmt.Sprintf("Parse error on %q", string(c)))
		}
	}
	return append(toks, token{0, "", len(src)}), nil
}

func blockString(raw string) string {
	lines := strings.Split(strings.ReplaceAll(raw, `\"""`, `"""`), "\n")
	indent := -1
	for _, l := range lines[1:] {
		t := strings.TrimLeft(l, " \t")
		if t == "" {
			continue
		}
		if n := len(l) - len(t); indent < 0 || n < indent {
			indent = n
		}
	}
	for i := 1; i < len(lines) && indent > 0; i++ {
		if len(lines[i]) >= indent {
			lines[i] = lines[i][indent:]
		}
	}
	for len(lines) > 0 && strings.TrimSpace(lines[0]) == "" {
		lines = lines[1:]
	}
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	return strings.Join(lines, "\n")
}

func isLetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }

type parseError struct {
	msg       string
	line, col int
}

func (e *parseError) Error() string { return e.msg }

func posErr(src string, pos int, msg string) error {
	line, col := lineCol(src, pos)
	return &parseError{msg: fmt.Sprintf("%s (line %d, column %d)", msg, line, col), line: line, col: col}
}

func lineCol(src string, pos int) (int, int) {
	if pos > len(src) {
		pos = len(src)
	}
	line := 1 + strings.Count(src[:pos], "\n")
	col := pos - strings.LastIndex(src[:pos], "\n")
	return line, col
}

type parser struct {
	src  string
	toks []token
	i    int
}

func parseGraphQL(src string) (*gqlDoc, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{src: src, toks: toks}
	doc := &gqlDoc{frags: map[string]*gqlFrag{}}
	for p.peek().kind != 0 {
		t := p.peek()
		switch {
		case t.kind == 'p' && t.val == "{":
			sel, err := p.selectionSet()
			if err != nil {
				return nil, err
			}
			doc.ops = append(doc.ops, &gqlOp{kind: "query", sel: sel})
		case t.kind == 'n' && (t.val == "query" || t.val == "mutation" || t.val == "subscription"):
			op, err := p.operation()
			if err != nil {
				return nil, err
			}
			doc.ops = append(doc.ops, op)
		case t.kind == 'n' && t.val == "fragment":
			f, err := p.fragment()
			if err != nil {
				return nil, err
			}
			if _, dup := doc.frags[f.name]; dup {
				return nil, fmt.Errorf("Fragment name %q must be unique", f.name)
			}
			doc.frags[f.name] = f
		default:
			return nil, p.unexpected()
		}
	}
	if len(doc.ops) == 0 {
		return nil, fmt.Errorf("No operations provided")
	}
	return doc, nil
}

// operation picks the operation to run.
func (d *gqlDoc) operation(name string) (*gqlOp, error) {
	if name == "" {
		if len(d.ops) != 1 {
			return nil, fmt.Errorf("An operation name is required")
		}
		return d.ops[0], nil
	}
	for _, op := range d.ops {
		if op.name == name {
			return op, nil
		}
	}
	return nil, fmt.Errorf("No operation named %q", name)
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != 0 {
		p.i++
	}
	return t
}

func (p *parser) unexpected() error {
	t := p.peek()
	if t.kind == 0 {
		return posErr(p.src, t.pos, "Parse error on end of query")
	}
	return posErr(p.src, t.pos, fmt.Sprintf("Parse error on %q", t.val))
}

func (p *parser) punct(v string) bool {
	if t := p.peek(); t.kind == 'p' && t.val == v {
		p.i++
		return true
	}
	return false
}

func (p *parser) expect(v string) error {
	if !p.punct(v) {
		return p.unexpected()
	}
	return nil
}

func (p *parser) name() (string, error) {
	if t := p.peek(); t.kind == 'n' {
		p.i++
		return t.val, nil
	}
	return "", p.unexpected()
}

func (p *parser) operation() (*gqlOp, error) {
	op := &gqlOp{kind: p.next().val}
	if p.peek().kind == 'n' {
		op.name = p.next().val
	}
	if p.punct("(") {
		for !p.punct(")") {
			if err := p.expect("$"); err != nil {
				return nil, err
			}
			name, err := p.name()
			if err != nil {
				return nil, err
			}
			if err := p.expect(":"); err != nil {
				return nil, err
			}
			typ, err := p.typeRef()
			if err != nil {
				return nil, err
			}
			vd := gqlVarDef{name: name, typ: typ}
			if p.punct("=") {
				if vd.def, err = p.value(true); err != nil {
					return nil, err
				}
				vd.hasDef = true
			}
			if err := p.directives(); err != nil {
				return nil, err
			}
			op.vars = append(op.vars, vd)
		}
	}
	if err := p.directives(); err != nil {
		return nil, err
	}
	sel, err := p.selectionSet()
	if err != nil {
		return nil, err
	}
	op.sel = sel
	return op, nil
}

func (p *parser) typeRef() (string, error) {
	var typ string
	if p.punct("[") {
		inner, err := p.typeRef()
		if err != nil {
			return "", err
		}
		if err := p.expect("]"); err != nil {
			return "", err
		}
		typ = "[" + inner + "]"
	} else {
		n, err := p.name()
		if err != nil {
			return "", err
		}
		typ = n
	}
	if p.punct("!") {
		typ += "!"
	}
	return typ, nil
}

func (p *parser) fragment() (*gqlFrag, error) {
	p.next() // fragment
	name, err := p.name()
	if err != nil {
		return nil, err
	}
	if on, err := p.name(); err != nil || on != "on" {
		return nil, p.unexpected()
	}
	typ, err := p.name()
	if err != nil {
		return nil, err
	}
	if err := p.directives(); err != nil {
		return nil, err
	}
	sel, err := p.selectionSet()
	if err != nil {
		return nil, err
	}
	return &gqlFrag{name: name, typeCond: typ, sel: sel}, nil
}

func (p *parser) directives() error {
	for p.punct("@") {
		if _, err := p.name(); err != nil {
			return err
		}
		if p.peek().kind == 'p' && p.peek().val == "(" {
			if _, err := p.arguments(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *parser) selectionSet() ([]*gqlSel, error) {
	if err := p.expect("{"); err != nil {
		return nil, err
	}
	var out []*gqlSel
	for !p.punct("}") {
		start := p.peek()
		line, col := lineCol(p.src, start.pos)
		if p.punct("...") {
			s := &gqlSel{line: line, col: col}
			if t := p.peek(); t.kind == 'n' && t.val != "on" {
				s.spread = p.next().val
				if err := p.directives(); err != nil {
					return nil, err
				}
				out = append(out, s)
				continue
			}
			s.inline = true
			if t := p.peek(); t.kind == 'n' && t.val == "on" {
				p.next()
				typ, err := p.name()
				if err != nil {
					return nil, err
				}
				s.typeCond = typ
			}
			if err := p.directives(); err != nil {
				return nil, err
			}
			sel, err := p.selectionSet()
			if err != nil {
				return nil, err
			}
			s.sel = sel
			out = append(out, s)
			continue
		}
		name, err := p.name()
		if err != nil {
			return nil, err
		}
		s := &gqlSel{name: name, line: line, col: col}
		if p.punct(":") {
			s.alias = name
			if s.name, err = p.name(); err != nil {
				return nil, err
			}
		}
		if t := p.peek(); t.kind == 'p' && t.val == "(" {
			if s.args, err = p.arguments(); err != nil {
				return nil, err
			}
		}
		if err := p.directives(); err != nil {
			return nil, err
		}
		if t := p.peek(); t.kind == 'p' && t.val == "{" {
			if s.sel, err = p.selectionSet(); err != nil {
				return nil, err
			}
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, p.unexpected()
	}
	return out, nil
}

func (p *parser) arguments() (map[string]any, error) {
	if err := p.expect("("); err != nil {
		return nil, err
	}
	args := map[string]any{}
	for !p.punct(")") {
		name, err := p.name()
		if err != nil {
			return nil, err
		}
		if err := p.expect(":"); err != nil {
			return nil, err
		}
		v, err := p.value(false)
		if err != nil {
			return nil, err
		}
		args[name] = v
	}
	return args, nil
}

func (p *parser) value(constant bool) (any, error) {
	t := p.next()
	switch t.kind {
	case 's':
		return t.val, nil
	case 'i':
		n, err := strconv.ParseInt(t.val, 10, 64)
		if err != nil {
			return nil, posErr(p.src, t.pos, "Bad Int")
		}
		return n, nil
	case 'f':
		f, err := strconv.ParseFloat(t.val, 64)
		if err != nil {
			return nil, posErr(p.src, t.pos, "Bad Float")
		}
		return f, nil
	case 'n':
		switch t.val {
		case "true":
			return true, nil
		case "false":
			return false, nil
		case "null":
			return nil, nil
		}
		return gqlEnum(t.val), nil
	case 'p':
		switch t.val {
		case "$":
			if constant {
				return nil, posErr(p.src, t.pos, "Variables are not allowed here")
			}
			n, err := p.name()
			if err != nil {
				return nil, err
			}
			return gqlVar(n), nil
		case "[":
			list := []any{}
			for !p.punct("]") {
				v, err := p.value(constant)
				if err != nil {
					return nil, err
				}
				list = append(list, v)
			}
			return list, nil
		case "{":
			obj := map[string]any{}
			for !p.punct("}") {
				n, err := p.name()
				if err != nil {
					return nil, err
				}
				if err := p.expect(":"); err != nil {
					return nil, err
				}
				v, err := p.value(constant)
				if err != nil {
					return nil, err
				}
				obj[n] = v
			}
			return obj, nil
		}
	}
	if t.kind == 0 {
		return nil, posErr(p.src, t.pos, "Parse error on end of query")
	}
	return nil, posErr(p.src, t.pos, fmt.Sprintf("Parse error on %q", t.val))
}
