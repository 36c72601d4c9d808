package mysql

import "strings"

// keyPlaceholder is the placeholder of a key value compared with c. DECIMAL
// keys are compared as decimals, not as floating point.
func keyPlaceholder(c *column) string {
	if c.valueKind == kindDecimal {
		return "CAST(? AS DECIMAL(65,30))"
	}
	return "?"
}

// keyAfter is "key > last" for a (possibly composite) key, written as
// (a > ?) OR (a = ? AND b > ?) so that the range optimizer uses the index.
func keyAfter(table string, key []*column, last []any) (string, []any) {
	return keyCompare(table, key, last, ">", false)
}

// keyAtLeast is "key >= first".
func keyAtLeast(table string, key []*column, first []any) (string, []any) {
	return keyCompare(table, key, first, ">", true)
}

// keyAtMost is "key <= last".
func keyAtMost(table string, key []*column, last []any) (string, []any) {
	return keyCompare(table, key, last, "<", true)
}

func keyCompare(table string, key []*column, last []any, op string, orEqual bool) (string, []any) {
	var parts []string
	var args []any
	for i := range key {
		var conj []string
		for j := 0; j < i; j++ {
			conj = append(conj, qualified(table, key[j].name)+" = "+keyPlaceholder(key[j]))
			args = append(args, last[j])
		}
		conj = append(conj, qualified(table, key[i].name)+" "+op+" "+keyPlaceholder(key[i]))
		args = append(args, last[i])
		parts = append(parts, strings.Join(conj, " AND "))
	}
	if orEqual {
		k, kargs := keyEquals(table, key, last)
		parts = append(parts, k)
		args = append(args, kargs...)
	}
	return "((" + strings.Join(parts, ") OR (") + "))", args
}

// keyEquals is "key = k".
func keyEquals(table string, key []*column, k []any) (string, []any) {
	conj := make([]string, len(key))
	for i, c := range key {
		conj[i] = qualified(table, c.name) + " = " + keyPlaceholder(c)
	}
	return "(" + strings.Join(conj, " AND ") + ")", append([]any(nil), k...)
}

// keyIn is "key IN (keys)".
func keyIn(table string, key []*column, keys [][]any) (string, []any) {
	var args []any
	if len(key) == 1 {
		ph := make([]string, len(keys))
		for i, k := range keys {
			ph[i] = keyPlaceholder(key[0])
			args = append(args, k[0])
		}
		return qualified(table, key[0].name) + " IN (" + strings.Join(ph, ",") + ")", args
	}
	parts := make([]string, len(keys))
	for i, k := range keys {
		var kargs []any
		parts[i], kargs = keyEquals(table, key, k)
		args = append(args, kargs...)
	}
	return "(" + strings.Join(parts, " OR ") + ")", args
}
