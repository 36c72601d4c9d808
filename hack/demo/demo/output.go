package demo

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// printer writes progress lines stamped with the time since the start, and
// indented blocks under them.
type printer struct {
	w     io.Writer
	start time.Time
	mu    sync.Mutex
}

const indent = "          "

func (p *printer) write(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprint(p.w, s)
}

// step prints a progress line.
func (p *printer) step(format string, args ...any) {
	p.write(fmt.Sprintf("[%6.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...)))
}

// info prints a line under the last step.
func (p *printer) info(format string, args ...any) {
	p.block(fmt.Sprintf(format, args...))
}

// cmd prints a command line under the last step.
func (p *printer) cmd(s string) { p.write(indent + "$ " + s + "\n") }

// block prints text indented under the last step.
func (p *printer) block(s string) {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return
	}
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		b.WriteString(strings.TrimRight(indent+line, " "))
		b.WriteByte('\n')
	}
	p.write(b.String())
}

// heading starts a section of the results.
func (p *printer) heading(s string) {
	p.write("\n" + s + "\n" + strings.Repeat("-", utf8.RuneCountInString(s)) + "\n")
}

// plain prints text as is.
func (p *printer) plain(s string) { p.write(strings.TrimRight(s, "\n") + "\n") }

// table formats rows in columns; columns of numbers are right-aligned.
func table(rows [][]string) string {
	widths := map[int]int{}
	numbers := map[int]bool{}
	for ri, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
			if ri > 0 {
				if _, seen := numbers[i]; !seen {
					numbers[i] = true
				}
				numbers[i] = numbers[i] && numeric(c)
			}
		}
	}
	var b strings.Builder
	for ri, r := range rows {
		for i, c := range r {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i > 0 {
				b.WriteString("  ")
			}
			if ri > 0 && i > 0 && numbers[i] {
				b.WriteString(pad + c)
			} else if i < len(r)-1 {
				b.WriteString(c + pad)
			} else {
				b.WriteString(c)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

func numeric(s string) bool {
	if s == "" || s == "-" {
		return s == "-"
	}
	s = strings.TrimPrefix(strings.TrimPrefix(s, "+"), "-")
	for _, r := range s {
		if (r < '0' || r > '9') && r != ',' && r != '%' && r != '.' && r != ' ' && r != '→' {
			return false
		}
	}
	return true
}

// num formats an integer with thousands separators; negative means n/a.
func num(n int64) string {
	if n < 0 {
		return "-"
	}
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }
