# The tools: omni-tap (the debug subscriber) and omni-loadgen (synthetic load).
TAP_CLASSES     := tools/omni-tap/tap_printer.c
LOADGEN_CLASSES := tools/omni-loadgen/synth.c tools/omni-loadgen/loadgen.c
$(eval $(call program,omni-tap,tools/omni-tap/main.c $(TAP_CLASSES),))
$(eval $(call program,omni-loadgen,tools/omni-loadgen/main.c $(LOADGEN_CLASSES),))
$(eval $(call selftest,tools-selftest,tools/selftest.c $(TAP_CLASSES) $(LOADGEN_CLASSES),))
include tools/omnictl/module.mk
include tools/omni-report/module.mk
