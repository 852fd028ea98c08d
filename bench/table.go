package bench

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteTable prints the result as a table: one row per program, then the
// ratios of the baseline to tributary.
func (r *Result) WriteTable(w io.Writer) error {
	over := "RTSP/TCP"
	if r.Source == SourceWHIP {
		over = "WebRTC (WHIP; video only, SRTP)"
	}
	fmt.Fprintf(w, "%d cameras of %s over %s, %s to %s; %.0f s window after %.0f s warm-up\n",
		r.Streams, r.Clip, over, r.Container, archiveName(r.Archive), r.WindowS, r.WarmupS)
	fmt.Fprintf(w, "machine: %s, %d cores, %s, %s\n\n", r.Machine, r.Cores, r.OS, r.GoVersion)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	name := func(s string) string { return fmt.Sprintf("%-37s", s) }
	fmt.Fprintln(tw, name("")+"\tCPU %\tCPU %/stream\tRSS MB\tRSS MB/stream\tpeak RSS MB\tdurable p50 ms\tp99 ms\tmax ms\tpkts lost\tframes dropped\tfragments\tfrags lost\t")
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t%.2f\t%.3f\t%.1f\t%.2f\t%.1f\t%s\t%s\t%s\t%d\t%s\t%d\t%s\t\n",
			name(row.Name), row.CPUPercent, row.CPUPerStream, row.RSSMB, row.RSSPerStreamMB, row.RSSPeakMB,
			ms(row.DurableP50MS), ms(row.DurableP99MS), ms(row.DurableMaxMS), row.PacketsLost,
			agentOnly(row, row.FramesDropped), row.Fragments, agentOnly(row, row.FragmentsLost))
	}
	if r.CPURatio > 0 {
		fmt.Fprintf(tw, "%s\t%.1f×\t\t%.1f×\t\t\t\t\t\t\t\t\t\t\n", name(r.Rows[1].Name+" / tributary"), r.CPURatio, r.RSSRatio)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, row := range r.Rows {
		what := "camsim (the cameras, not counted above)"
		if r.Source == SourceWHIP {
			what = "camsim (the WHIP publishers: pion, SRTP; not counted above)"
		}
		fmt.Fprintf(w, "%s used %.1f%% of a core during the %s window\n", what, row.CamsimCPUPercent, row.Name)
	}
	return nil
}

func archiveName(a string) string {
	switch a {
	case "dir":
		return "a local archive"
	case "s3":
		return "versitygw (S3) through the spool"
	}
	return "an S3 archive through the spool"
}

func ms(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f", *v)
}

// agentOnly prints a counter only the agent reports.
func agentOnly(r Row, v uint64) string {
	if r.Name != "tributary" {
		return "-"
	}
	return fmt.Sprint(v)
}
