module github.com/webtracker/tracker

go 1.26.8
