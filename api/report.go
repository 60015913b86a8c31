package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/kela-hva/referrals/domain"
	"github.com/labstack/echo/v4"
)

// Report formats.
const (
	reportFull = "full"
	reportTHL  = "thl"
)

// reportParams is the parsed query of GET /v1/reports/response-times.
type reportParams struct {
	format   string
	from, to domain.Month
	half     domain.HalfYear // format thl
	groupBy  []domain.ReportDimension
}

// handleReport serves the response-time report (format=full, the default) and THL's
// half-year §27 c figures (format=thl). Only supervisors may read it (403 otherwise); bad
// parameters are 400 with the parameter named.
func handleReport(rp *domain.Reporter) echo.HandlerFunc {
	return func(c echo.Context) error {
		actor := actorOf(c)
		if _, err := domain.ReportScope(actor); err != nil {
			return err
		}
		if rp == nil {
			return domain.Errorf(domain.EInternal, "reports are not configured")
		}
		p, err := parseReportParams(c)
		if err != nil {
			return err
		}
		ctx := c.Request().Context()
		if p.format == reportTHL {
			out, err := rp.THL(ctx, actor, p.half)
			if err != nil {
				return err
			}
			return c.JSON(http.StatusOK, out)
		}
		out, err := rp.ResponseTimes(ctx, actor, domain.ReportQuery{From: p.from, To: p.to, GroupBy: p.groupBy})
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, out)
	}
}

// parseReportParams reads format, period, from, to and group_by. The period is whole months:
// from must be the first day of a month and to the last day of one (the aggregates are
// monthly), or period names a half-year. format=thl needs a half-year.
func parseReportParams(c echo.Context) (reportParams, error) {
	q := c.QueryParams()
	var v domain.Violations
	once := func(name string) string {
		vals := q[name]
		if len(vals) > 1 {
			v.Add("", "query parameter %s: give it once", name)
		}
		if len(vals) == 0 {
			return ""
		}
		return vals[0]
	}
	p := reportParams{format: reportFull}
	switch f := once("format"); f {
	case "", reportFull:
	case reportTHL:
		p.format = reportTHL
	default:
		v.Add("", "query parameter format: must be full or thl")
	}
	period, fromS, toS := once("period"), once("from"), once("to")
	fromOK, toOK := false, false
	switch {
	case period != "":
		if fromS != "" || toS != "" {
			v.Add("", "query parameter period: give either period or from and to")
			break
		}
		h, ok := domain.ParseHalfYear(period)
		if !ok {
			v.Add("", "query parameter period: must be a half-year such as 2026H2")
			break
		}
		p.half, p.from, p.to, fromOK, toOK = h, h.From(), h.To(), true, true
	default:
		if fromS == "" {
			v.Add("", "query parameter from: is required (or give period)")
		} else if d, ok := parseDate(fromS); !ok {
			v.Add("", "query parameter from: must be a date YYYY-MM-DD")
		} else if d.Day() != 1 {
			v.Add("", "query parameter from: must be the first day of a month")
		} else {
			p.from, fromOK = domain.MakeMonth(d.Year(), d.Month()), true
		}
		if toS == "" {
			v.Add("", "query parameter to: is required (or give period)")
		} else if d, ok := parseDate(toS); !ok {
			v.Add("", "query parameter to: must be a date YYYY-MM-DD")
		} else if d.AddDate(0, 0, 1).Day() != 1 {
			v.Add("", "query parameter to: must be the last day of a month")
		} else {
			p.to, toOK = domain.MakeMonth(d.Year(), d.Month()), true
		}
		if fromOK && toOK && p.to < p.from {
			v.Add("", "query parameter to: must not be before from")
		}
	}
	if gb := q["group_by"]; len(gb) > 0 {
		if p.format == reportTHL {
			v.Add("", "query parameter group_by: not used with format=thl (its figures are per organisation)")
		}
		if len(gb) > 1 {
			v.Add("", "query parameter group_by: give it once, comma-separated (group_by=kind,urgency)")
		}
		seen := map[domain.ReportDimension]bool{}
		for _, s := range strings.Split(gb[0], ",") {
			d := domain.ReportDimension(s)
			switch {
			case !d.Valid():
				v.Add("", "query parameter group_by: must be a comma-separated list of kind, urgency, month and organisation")
			case seen[d]:
				v.Add("", "query parameter group_by: lists %s twice", d)
			default:
				seen[d] = true
				p.groupBy = append(p.groupBy, d)
			}
		}
	}
	if p.format == reportTHL && period == "" && fromOK && toOK {
		if h, ok := domain.HalfYearOf(p.from, p.to); ok {
			p.half = h
		} else {
			v.Add("", "query parameter from: with format=thl, from and to must span one half-year (01-01..06-30 or 07-01..12-31), or give period")
		}
	}
	if len(v) > 0 {
		return p, &domain.Error{Code: domain.EMalformed, Message: "the query is invalid", Fields: v}
	}
	return p, nil
}

// parseDate reads YYYY-MM-DD strictly (time.Parse accepts no other layout here).
func parseDate(s string) (time.Time, bool) {
	if len(s) != len(time.DateOnly) {
		return time.Time{}, false
	}
	d, err := time.Parse(time.DateOnly, s)
	return d, err == nil
}
