package servers

import (
	"context"
	"errors"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Stop shuts a started PostgreSQL down as an operator would (SIGINT, fast
// shutdown: sessions are terminated with 57P01, new connections refused)
// and waits until it has exited. Start brings it back on the same port and
// data directory.
func (p *Postgres) Stop() error {
	if p.proc == nil {
		return errors.New("PostgreSQL: only a started server can be stopped")
	}
	p.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = syscall.Kill(-p.proc.cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-p.proc.done:
	case <-deadline(stopTimeout):
		p.proc.stop()
	}
	return nil
}

// Start starts a server stopped by Stop again and waits until it accepts
// connections.
func (p *Postgres) Start(ctx context.Context) error {
	if p.proc == nil {
		return errors.New("PostgreSQL: only a started server can be started again")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.proc.exited() {
		return errors.New("PostgreSQL: the server is still running")
	}
	// Forget the exited process, so Close does not signal its process
	// group (whose id may be reused by then).
	p.group.mu.Lock()
	for i, q := range p.group.procs {
		if q == p.proc {
			p.group.procs = append(p.group.procs[:i], p.group.procs[i+1:]...)
			break
		}
	}
	p.group.mu.Unlock()
	proc, err := p.group.start(p.spec)
	if err != nil {
		return err
	}
	p.proc = proc
	return p.group.waitReady(ctx, proc, func(ctx context.Context) error {
		c, err := pgx.Connect(ctx, p.adminURL.String())
		if err != nil {
			return err
		}
		return c.Close(ctx)
	})
}

func deadline(d time.Duration) <-chan time.Time { return time.After(d) }
