package selfcheck

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
	"golang.org/x/text/language"
)

//go:embed catalogue/*.yaml
var shipped embed.FS

// defaultLang is the language every catalogue must have and the fallback.
const defaultLang = "en"

// Catalogue holds the page's text and the clean-up advice in every
// available language. It is immutable and safe for concurrent use.
type Catalogue struct {
	langs    []string // language tags, defaultLang first
	matcher  language.Matcher
	messages map[string]map[string]string // lang → key → text
	cleanup  map[string]map[string]*Cleanup
}

// Cleanup is the clean-up advice for one malware family, in one language.
type Cleanup struct {
	Family      string   `yaml:"family" json:"family"`
	Name        string   `yaml:"name" json:"name"`
	Description string   `yaml:"description" json:"description"`
	Symptoms    []string `yaml:"symptoms" json:"symptoms"`
	Steps       []string `yaml:"steps" json:"steps"`
	Tools       []Tool   `yaml:"tools" json:"tools"`
	After       []string `yaml:"after" json:"after"`
}

// Tool is a free removal tool.
type Tool struct {
	Name string `yaml:"name" json:"name"`
	URL  string `yaml:"url" json:"url"`
}

type cleanupFile struct {
	Families []*Cleanup `yaml:"families"`
}

// DefaultCatalogue returns the catalogue shipped in the binary.
func DefaultCatalogue() *Catalogue {
	c, err := LoadCatalogue(shipped, "catalogue")
	if err != nil {
		panic("selfcheck: the shipped catalogue is invalid: " + err.Error()) // a test guards it
	}
	return c
}

// LoadCatalogue reads messages.<lang>.yaml and cleanup.<lang>.yaml files in
// dir of fsys. English (messages.en.yaml, cleanup.en.yaml) is required;
// every other language must translate every English message key. All
// problems are reported together.
func LoadCatalogue(fsys fs.FS, dir string) (*Catalogue, error) {
	c := &Catalogue{messages: map[string]map[string]string{}, cleanup: map[string]map[string]*Cleanup{}}
	names, err := fs.Glob(fsys, path.Join(dir, "*.yaml"))
	if err != nil {
		return nil, fmt.Errorf("catalogue: %w", err)
	}
	var errs []error
	for _, name := range names {
		base := path.Base(name)
		kind, lang, ok := splitName(base)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: not messages.<lang>.yaml or cleanup.<lang>.yaml", base))
			continue
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		switch kind {
		case "messages":
			m := map[string]string{}
			if err := dec.Decode(&m); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", base, err))
				continue
			}
			c.messages[lang] = m
		case "cleanup":
			var f cleanupFile
			if err := dec.Decode(&f); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", base, err))
				continue
			}
			m := map[string]*Cleanup{}
			for i, e := range f.Families {
				if err := e.check(); err != nil {
					errs = append(errs, fmt.Errorf("%s: families[%d]: %w", base, i, err))
					continue
				}
				if _, dup := m[e.Family]; dup {
					errs = append(errs, fmt.Errorf("%s: families[%d]: family %q listed twice", base, i, e.Family))
				}
				m[e.Family] = e
			}
			c.cleanup[lang] = m
		}
	}
	en := c.messages[defaultLang]
	if en == nil {
		errs = append(errs, fmt.Errorf("catalogue: messages.%s.yaml is missing", defaultLang))
	}
	if c.cleanup[defaultLang]["*"] == nil {
		errs = append(errs, fmt.Errorf("catalogue: cleanup.%s.yaml is missing or has no family \"*\"", defaultLang))
	}
	for lang, m := range c.messages {
		for k := range en {
			if strings.TrimSpace(m[k]) == "" {
				errs = append(errs, fmt.Errorf("messages.%s.yaml: key %q is missing or empty", lang, k))
			}
		}
		for k := range m {
			if _, ok := en[k]; !ok && en != nil {
				errs = append(errs, fmt.Errorf("messages.%s.yaml: key %q is not in messages.%s.yaml", lang, k, defaultLang))
			}
		}
	}
	for lang := range c.cleanup {
		if c.messages[lang] == nil {
			errs = append(errs, fmt.Errorf("cleanup.%s.yaml: there is no messages.%s.yaml", lang, lang))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c.langs = []string{defaultLang}
	for lang := range c.messages {
		if lang != defaultLang {
			c.langs = append(c.langs, lang)
		}
	}
	slices.Sort(c.langs[1:])
	tags := make([]language.Tag, len(c.langs))
	for i, l := range c.langs {
		tags[i] = language.Make(l)
	}
	c.matcher = language.NewMatcher(tags)
	return c, nil
}

// splitName splits "messages.en.yaml" into its kind and language.
func splitName(base string) (kind, lang string, ok bool) {
	parts := strings.Split(base, ".")
	if len(parts) != 3 || parts[2] != "yaml" || (parts[0] != "messages" && parts[0] != "cleanup") {
		return "", "", false
	}
	t, err := language.Parse(parts[1])
	if err != nil || t.String() != parts[1] {
		return "", "", false
	}
	return parts[0], parts[1], true
}

func (e *Cleanup) check() error {
	var errs []error
	if e.Family == "" {
		errs = append(errs, errors.New("family is empty"))
	}
	if e.Name == "" || e.Description == "" || len(e.Steps) == 0 {
		errs = append(errs, fmt.Errorf("family %q needs a name, a description and steps", e.Family))
	}
	for _, t := range e.Tools {
		u, err := url.Parse(t.URL)
		if err != nil || u.Scheme != "https" || u.Host == "" || t.Name == "" {
			errs = append(errs, fmt.Errorf("family %q: tool %q: needs a name and an https URL", e.Family, t.Name))
		}
	}
	return errors.Join(errs...)
}

// Languages lists the available language tags, English first.
func (c *Catalogue) Languages() []string { return slices.Clone(c.langs) }

// maxAcceptLanguage bounds the Accept-Language header parsed.
const maxAcceptLanguage = 512

// Match picks the best available language for an Accept-Language header;
// English when nothing matches or the header is malformed.
func (c *Catalogue) Match(acceptLanguage string) string {
	if acceptLanguage == "" || len(acceptLanguage) > maxAcceptLanguage || len(c.langs) == 1 {
		return defaultLang
	}
	tags, _, err := language.ParseAcceptLanguage(acceptLanguage)
	if err != nil || len(tags) == 0 {
		return defaultLang
	}
	_, i, conf := c.matcher.Match(tags...)
	if conf == language.No {
		return defaultLang
	}
	return c.langs[i]
}

// Text returns message key in lang with {name} placeholders replaced by
// the pairs in kv (name, value, …). A key missing everywhere comes back as
// "⟦key⟧", which the tests look for.
func (c *Catalogue) Text(lang, key string, kv ...string) string {
	s, ok := c.messages[lang][key]
	if !ok {
		if s, ok = c.messages[defaultLang][key]; !ok {
			return "⟦" + key + "⟧"
		}
	}
	if len(kv) == 0 {
		return s
	}
	pairs := make([]string, 0, len(kv))
	for i := 0; i+1 < len(kv); i += 2 {
		pairs = append(pairs, "{"+kv[i]+"}", kv[i+1])
	}
	return strings.NewReplacer(pairs...).Replace(s)
}

// Cleanup returns the advice for family in lang, falling back to English
// and then to the generic entry ("*").
func (c *Catalogue) Cleanup(lang, family string) *Cleanup {
	for _, l := range []string{lang, defaultLang} {
		if e := c.cleanup[l][family]; e != nil {
			return e
		}
	}
	for _, l := range []string{lang, defaultLang} {
		if e := c.cleanup[l]["*"]; e != nil {
			return e
		}
	}
	return nil
}
