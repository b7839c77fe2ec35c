# Shortcuts; each target goes through ./waybill, which installs what it needs.
.PHONY: run test test-postgres lint bench
run:
	./waybill up
test:
	./waybill test
test-postgres:
	./waybill test --postgres
lint:
	./waybill lint
bench:
	./waybill bench
