package servers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
)

// StartMariaDBReplica starts a second MariaDB (server_id 2 and up) that
// replicates primary over 127.0.0.1 from the primary's current binary log
// position (CHANGE MASTER TO … ; START SLAVE), so what the primary did
// before (its own setup) is not replayed. primary must have been started
// with MariaDBOptions.LogBin. The replica's account is its own (the same
// user name, its own password).
func (g *Group) StartMariaDBReplica(ctx context.Context, primary *MariaDB, serverID int) (*MariaDB, error) {
	if serverID < 2 {
		serverID = 2
	}
	var file string
	var pos int64
	var skip1, skip2 any
	rows, err := primary.admin.QueryContext(ctx, "SHOW MASTER STATUS")
	if err != nil {
		return nil, fmt.Errorf("MariaDB replica: reading the primary's position: %w", err)
	}
	found := rows.Next()
	if found {
		err = rows.Scan(&file, &pos, &skip1, &skip2)
	}
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("MariaDB replica: reading the primary's position: %w", err)
	}
	if !found {
		return nil, errors.New("MariaDB replica: the primary has no binary log (start it with MariaDBOptions.LogBin)")
	}
	r, err := g.StartMariaDBWith(ctx, MariaDBOptions{ServerID: serverID})
	if err != nil {
		return nil, err
	}
	stmts := []string{
		"CHANGE MASTER TO MASTER_HOST=" + sqlQuote(primary.Host) + ", MASTER_PORT=" + strconv.Itoa(primary.Port) +
			", MASTER_USER=" + sqlQuote(primary.User) + ", MASTER_PASSWORD=" + sqlQuote(primary.Password) +
			", MASTER_LOG_FILE=" + sqlQuote(file) + ", MASTER_LOG_POS=" + strconv.FormatInt(pos, 10) +
			", MASTER_USE_GTID=no, MASTER_CONNECT_RETRY=1",
		"START SLAVE",
	}
	for _, s := range stmts {
		if _, err := r.admin.ExecContext(ctx, s); err != nil {
			return nil, fmt.Errorf("MariaDB replica: %w", err)
		}
	}
	return r, nil
}

// Exec runs one statement on the server's admin connections (on a replica:
// STOP SLAVE SQL_THREAD, START SLAVE, CHANGE MASTER TO MASTER_DELAY=…).
func (m *MariaDB) Exec(ctx context.Context, stmt string) error {
	_, err := m.admin.ExecContext(ctx, stmt)
	return err
}
