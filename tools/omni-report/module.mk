# omni-report: audit reports (HTML, PDF, JSON) and the live dashboard.
# cairo draws the charts (SVG for the HTML, PDF for the PDF). Included from
# tools/module.mk, like omnictl (the top Makefile includes one level deep).
REPORT_CLASSES := tools/omni-report/model.c tools/omni-report/gather.c \
    tools/omni-report/chart.c tools/omni-report/jsonout.c tools/omni-report/htmlout.c \
    tools/omni-report/pdfout.c tools/omni-report/server.c tools/omni-report/analysis.c
$(eval $(call program,omni-report,tools/omni-report/main.c $(REPORT_CLASSES),cairo fontconfig))
$(eval $(call selftest,omni-report-selftest,tools/omni-report/selftest.c $(REPORT_CLASSES),cairo fontconfig))
