package mysql

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// cursorPrefix versions the cursor format.
const cursorPrefix = "my1."

// cursorState is what a cursor remembers between Execute calls.
type cursorState struct {
	Tag string `json:"t"`
	// Partitions: the partition phase is done (expired partitions were
	// dropped, or there were none).
	Partitions bool `json:"p,omitempty"`
	// Key is the last key of the last batch, one string per key column
	// (base64 for binary columns); empty before the first batch.
	Key []string `json:"k,omitempty"`
}

func encodeCursor(s cursorState) string {
	b, _ := json.Marshal(s)
	return cursorPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor parses a cursor made for p's table and key ("" starts over).
func decodeCursor(p *plan, cursor string) (cursorState, []any, error) {
	if cursor == "" {
		return cursorState{Tag: p.tag}, nil, nil
	}
	body, ok := strings.CutPrefix(cursor, cursorPrefix)
	if !ok {
		return cursorState{}, nil, invalid(p.op, "malformed cursor")
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return cursorState{}, nil, invalid(p.op, "malformed cursor")
	}
	var s cursorState
	if err := json.Unmarshal(raw, &s); err != nil {
		return cursorState{}, nil, invalid(p.op, "malformed cursor")
	}
	if s.Tag != p.tag {
		return cursorState{}, nil, invalid(p.op, "the cursor was made for another table or key")
	}
	if len(s.Key) == 0 {
		return s, nil, nil
	}
	if len(s.Key) != len(p.key) {
		return cursorState{}, nil, invalid(p.op, "malformed cursor")
	}
	args := make([]any, len(s.Key))
	for i, c := range p.key {
		v, err := parseKey(c, s.Key[i])
		if err != nil {
			return cursorState{}, nil, invalid(p.op, "malformed cursor")
		}
		args[i] = v
	}
	return s, args, nil
}

// keyString encodes one key value read from the server for a cursor, and
// returns the value to bind when comparing with the column.
func keyString(c *column, v any) (string, any, error) {
	switch c.valueKind {
	case kindInt:
		n, err := toInt64(v)
		return strconv.FormatInt(n, 10), n, err
	case kindUint:
		n, err := toUint64(v)
		return strconv.FormatUint(n, 10), n, err
	case kindFloat:
		var f float64
		switch x := v.(type) {
		case float64:
			f = x
		case float32:
			f = float64(x)
		case []byte:
			var err error
			if f, err = strconv.ParseFloat(string(x), 64); err != nil {
				return "", nil, err
			}
		default:
			return "", nil, fmt.Errorf("unexpected %T", v)
		}
		return strconv.FormatFloat(f, 'g', -1, 64), f, nil
	case kindBytes:
		b, ok := v.([]byte)
		if !ok {
			if s, isString := v.(string); isString {
				b, ok = []byte(s), true
			}
		}
		if !ok {
			return "", nil, fmt.Errorf("unexpected %T", v)
		}
		return base64.StdEncoding.EncodeToString(b), b, nil
	case kindDatetime, kindTimestamp, kindDate:
		// DATETIME read with loc=UTC carries its wall clock as UTC, and
		// TIMESTAMP is read in the UTC session: either way the UTC
		// rendering is what the server compares.
		var s string
		switch x := v.(type) {
		case time.Time:
			if c.valueKind == kindDate {
				s = x.UTC().Format(sqlDate)
			} else {
				s = x.UTC().Format(sqlDatetime)
			}
		case []byte:
			s = string(x)
		case string:
			s = x
		default:
			return "", nil, fmt.Errorf("unexpected %T", v)
		}
		return s, s, nil
	}
	var s string
	switch x := v.(type) {
	case []byte:
		s = string(x)
	case string:
		s = x
	case int64:
		s = strconv.FormatInt(x, 10)
	case uint64:
		s = strconv.FormatUint(x, 10)
	default:
		return "", nil, fmt.Errorf("unexpected %T", v)
	}
	return s, s, nil
}

// parseKey decodes one cursor key element into the value to bind.
func parseKey(c *column, s string) (any, error) {
	switch c.valueKind {
	case kindInt:
		return strconv.ParseInt(s, 10, 64)
	case kindUint:
		return strconv.ParseUint(s, 10, 64)
	case kindFloat:
		return strconv.ParseFloat(s, 64)
	case kindBytes:
		return base64.StdEncoding.DecodeString(s)
	}
	return s, nil
}

func toInt64(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case int32:
		return int64(x), nil
	case uint64:
		if x > math.MaxInt64 {
			return 0, fmt.Errorf("out of range")
		}
		return int64(x), nil
	case []byte:
		return strconv.ParseInt(string(x), 10, 64)
	case string:
		return strconv.ParseInt(x, 10, 64)
	}
	return 0, fmt.Errorf("unexpected %T", v)
}

func toUint64(v any) (uint64, error) {
	switch x := v.(type) {
	case int64:
		if x < 0 {
			return 0, fmt.Errorf("out of range")
		}
		return uint64(x), nil
	case uint64:
		return x, nil
	case []byte:
		return strconv.ParseUint(string(x), 10, 64)
	case string:
		return strconv.ParseUint(x, 10, 64)
	}
	return 0, fmt.Errorf("unexpected %T", v)
}
