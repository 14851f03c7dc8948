package simulate

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ReadDomains reads seized names, one a line; '#' starts a comment and
// blank lines are skipped. Problems are reported together as
// "name:line: what is wrong". Names are checked again by New.
func ReadDomains(r io.Reader, name string) ([]string, error) {
	var out []string
	var errs []error
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(line), "."))
		switch {
		case line == "":
		case !validName(line):
			errs = append(errs, fmt.Errorf("%s:%d: %q is not a host name (one name a line)", name, n, line))
		default:
			out = append(out, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no names", name)
	}
	return out, nil
}
