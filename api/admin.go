package api

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/kela-hva/referrals/domain"
	"github.com/labstack/echo/v4"
)

// BackupFunc writes a consistent copy of the whole database to w while the service keeps
// running, and returns the number of bytes written (store.DB.Backup).
type BackupFunc func(w io.Writer) (int64, error)

// BackupOrg is the organisation whose operators may take backups. A backup holds every
// organisation's client data, so only operators of the organisation that runs the service may
// take one, never a county's or anyone without the operator role.
const BackupOrg = domain.Kela

// AuditBackup is the access-log action of taking a backup: one entry for the whole database.
const AuditBackup domain.AuditAction = "backup"

// Trailers of a backup response: the SHA-256 (hex) and length of the body, so a client can
// tell a complete copy from a cut one.
const (
	TrailerBackupSHA256 = "Backup-Sha256"
	TrailerBackupBytes  = "Backup-Bytes"
)

// backupIdle is how long one write of a backup may take. The server's WriteTimeout bounds a
// whole response, which a large database would outgrow; instead each write gets this long, so
// a stalled client cannot hold the backup's read transaction (and the file's free pages) for
// ever.
const backupIdle = 30 * time.Second

// handleBackup streams a consistent bbolt copy of the database (GET /v1/admin/backup) to an
// operator of BackupOrg; every other caller gets 403. The copy is a bbolt file that
// store.Open accepts. If the copy fails after the first byte the connection is cut, so the
// client sees a truncated body and no Backup-Sha256 trailer, never a short "complete" file.
func handleBackup(s *domain.Service, backup BackupFunc, log, audit *slog.Logger) echo.HandlerFunc {
	return func(c echo.Context) error {
		a := actorOf(c)
		if !a.Has(domain.RoleOperator) || a.Org != BackupOrg {
			return domain.Errorf(domain.EForbidden,
				"only operators of %s may take backups: a backup holds every organisation's client data", BackupOrg)
		}
		if backup == nil {
			return errors.New("api: no backup function configured")
		}
		// The copy discloses every client's data: record who took it before the first byte, in
		// the access log (a failure stops the backup, as it stops any read) and in the log.
		if s != nil && s.Store != nil {
			at := time.Now()
			if s.Clock != nil {
				at = s.Clock.Now() // the time every access-log entry is stamped with
			}
			e := domain.AuditEntry{At: at.UTC(), Action: AuditBackup, UserID: a.UserID, UserName: a.Name,
				Org: a.Org, Roles: a.Roles, RequestID: requestID(c), Query: "whole database"}
			if err := s.Store.AppendAudit(c.Request().Context(), []domain.AuditEntry{e}); err != nil {
				return err
			}
		}
		audit.LogAttrs(c.Request().Context(), slog.LevelInfo, "database backup",
			slog.String("audit", "backup"), slog.String("user", a.UserID), slog.String("org", string(a.Org)),
			slog.Any("roles", a.Roles), slog.String("request_id", requestID(c)))

		name := "referrals-" + time.Now().UTC().Format("20060102T150405Z") + ".db"
		h := c.Response().Header()
		h.Set(echo.HeaderContentType, echo.MIMEOctetStream)
		h.Set(echo.HeaderContentDisposition, `attachment; filename="`+name+`"`)
		h.Set("Trailer", TrailerBackupSHA256+", "+TrailerBackupBytes)
		c.Response().WriteHeader(http.StatusOK)

		sum := sha256.New()
		w := &idleDeadlineWriter{w: c.Response(), rc: http.NewResponseController(c.Response()), idle: backupIdle}
		start := time.Now()
		n, err := backup(io.MultiWriter(w, sum))
		if err != nil {
			log.ErrorContext(c.Request().Context(), "backup failed; connection cut", "err", err,
				"bytes", n, "request_id", requestID(c))
			panic(http.ErrAbortHandler) // recoverMiddleware lets it through; net/http drops the connection
		}
		h.Set(TrailerBackupSHA256, hex.EncodeToString(sum.Sum(nil)))
		h.Set(TrailerBackupBytes, strconv.FormatInt(n, 10))
		log.InfoContext(c.Request().Context(), "backup sent", "bytes", n,
			"duration_ms", time.Since(start).Milliseconds(), "request_id", requestID(c))
		return nil
	}
}

// idleDeadlineWriter moves the connection's write deadline forward as the body goes out (at
// most once a second), so only a stalled write times out.
type idleDeadlineWriter struct {
	w    io.Writer
	rc   *http.ResponseController
	idle time.Duration
	last time.Time
}

func (d *idleDeadlineWriter) Write(p []byte) (int, error) {
	if now := time.Now(); now.Sub(d.last) >= time.Second {
		// ErrNotSupported (a writer without deadlines) leaves the server's timeout in force.
		_ = d.rc.SetWriteDeadline(now.Add(d.idle))
		d.last = now
	}
	return d.w.Write(p)
}
