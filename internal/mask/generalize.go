package mask

import (
	"net/netip"
	"strings"
	"time"
)

// Layouts accepted for times held in strings, most specific first. A layout
// with fractional seconds also parses times without them, and formats
// without trailing zeros.
var (
	timestampLayouts = []string{
		time.RFC3339Nano,                      // 2024-05-17T13:45:00.123+02:00
		"2006-01-02 15:04:05.999999999Z07:00", // PostgreSQL text with a full offset
		"2006-01-02 15:04:05.999999999Z07",    // PostgreSQL text: 2024-05-17 13:45:00+02
		"2006-01-02T15:04:05.999999999",       // no offset: UTC
		"2006-01-02 15:04:05.999999999",       // SQL datetime: UTC
		time.DateOnly,                         // midnight UTC
	}
	dateLayouts = []string{time.DateOnly}
)

// timeLayoutsHelp names the accepted layouts in an error message.
func timeLayoutsHelp(t ColumnType) string {
	if t == Date {
		return "a date such as 1970-01-01"
	}
	return "an RFC 3339 timestamp such as 1970-01-01T00:00:00Z, or a date such as 1970-01-01"
}

// parseTime parses a time held in text for a Timestamp or Date column and
// returns the layout it matched. An offset becomes a fixed zone, so the result
// does not depend on the machine's local time zone.
func parseTime(s string, t ColumnType) (time.Time, string, bool) {
	layouts := timestampLayouts
	if t == Date {
		layouts = dateLayouts
	}
	for _, layout := range layouts {
		if v, err := time.Parse(layout, s); err == nil {
			if v.Location() != time.UTC {
				_, offset := v.Zone()
				v = v.In(time.FixedZone("", offset))
			}
			return v, layout, true
		}
	}
	return time.Time{}, "", false
}

// generalizeTime applies Generalize to a Timestamp or Date value.
func (s Strategy) generalizeTime(v any, col Column) (any, error) {
	switch x := v.(type) {
	case time.Time:
		return s.truncateTime(x), nil
	case string, []byte:
		out, err := s.generalizeTimeText(asString(x), col)
		return sameType(x, out, err)
	}
	return nil, unsupported(v, col)
}

// generalizeTimeText generalizes a time held in text and writes it back in
// the layout it was read in.
func (s Strategy) generalizeTimeText(in string, col Column) (string, error) {
	t, layout, ok := parseTime(strings.TrimSpace(in), col.Type)
	if !ok {
		return "", badValue("a %s value held in text is not %s", col.Type, timeLayoutsHelp(col.Type))
	}
	return s.truncateTime(t).Format(layout), nil
}

// truncateTime returns the start of t's day, month or year in t's location.
func (s Strategy) truncateTime(t time.Time) time.Time {
	y, m, d := t.Date()
	switch s.Granularity {
	case "Month":
		d = 1
	case "Year":
		m, d = time.January, 1
	}
	return startOfDay(y, m, d, t.Location())
}

// startOfDay is the first instant of a day in loc. Where a daylight-saving
// change skips midnight (America/Sao_Paulo on 2018-11-04), time.Date answers
// with an instant of the previous day; the day then starts at the transition.
func startOfDay(y int, m time.Month, d int, loc *time.Location) time.Time {
	t := time.Date(y, m, d, 0, 0, 0, 0, loc)
	if ty, tm, td := t.Date(); ty == y && tm == m && td == d {
		return t
	}
	if _, end := t.ZoneBounds(); !end.IsZero() {
		return end
	}
	return t
}

// generalizeIP applies Generalize to an IP value.
func generalizeIP(v any, col Column) (any, error) {
	switch x := v.(type) {
	case netip.Addr:
		if !x.IsValid() {
			return nil, badValue("the zero netip.Addr is not an IP address")
		}
		return network(x), nil
	case netip.Prefix:
		if !x.IsValid() {
			return nil, badValue("an invalid netip.Prefix is not an IP address")
		}
		return netip.PrefixFrom(network(x.Addr()), x.Bits()), nil
	case string, []byte:
		out, err := generalizeIPText(asString(x), col)
		return sameType(x, out, err)
	}
	return nil, unsupported(v, col)
}

// generalizeIPText generalizes an address held in text, with or without a
// prefix length, and writes it back in canonical form.
func generalizeIPText(in string, col Column) (string, error) {
	in = strings.TrimSpace(in)
	var out string
	if strings.Contains(in, "/") {
		p, err := netip.ParsePrefix(in)
		if err != nil {
			return "", badValue("an IP value held in text is not an address or prefix")
		}
		out = netip.PrefixFrom(network(p.Addr()), p.Bits()).String()
	} else {
		a, ok := parseIP(in)
		if !ok {
			return "", badValue("an IP value held in text is not an address or prefix")
		}
		out = network(a).String()
	}
	if col.MaxLength > 0 && len(out) > col.MaxLength { // canonical addresses are ASCII
		return "", badValue("the generalized address is longer than the column's limit of %d characters", col.MaxLength)
	}
	return out, nil
}

// network is the network address of a's /24 (IPv4, also when IPv4-mapped) or
// /48 (IPv6), without a zone.
func network(a netip.Addr) netip.Addr {
	bits := 48
	switch {
	case a.Is4():
		bits = 24
	case a.Is4In6():
		bits = 96 + 24
	}
	p, _ := a.WithZone("").Prefix(bits) // bits is within a's length
	return p.Addr()
}

// parseIP parses an address held in text.
func parseIP(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	return a, err == nil
}

// fixedIP applies Fixed to an IP column.
func (s Strategy) fixedIP(v any, col Column) (any, error) {
	a, _ := parseIP(s.Replacement) // checked by Validate
	switch v.(type) {
	case netip.Addr:
		return a, nil
	case netip.Prefix:
		return netip.PrefixFrom(a, a.BitLen()), nil
	case nil, string, []byte:
		return sameType(v, s.Replacement, nil)
	}
	return nil, unsupported(v, col)
}
