module cprofd-test-go-hot

go 1.19
