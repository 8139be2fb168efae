// Command gorilla-echo is a gorilla/websocket echo server, a peer for sidestream-bench.
//
// Build (Debian's golang-go and golang-github-gorilla-websocket-dev, no module download):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o gorilla-echo main.go
//
// Run: ./gorilla-echo [-addr 127.0.0.1:0]. It prints `listening addr=HOST:PORT` once bound.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/gorilla/websocket"
)

var upgrader = websocket.Upgrader{
	CheckOrigin: func(r *http.Request) bool { return true },
}

func echo(w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	for {
		mt, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		if err := c.WriteMessage(mt, msg); err != nil {
			return
		}
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stdout, "listening addr=%s\n", ln.Addr())
	mux := http.NewServeMux()
	mux.HandleFunc("/", echo)
	log.Fatal(http.Serve(ln, mux))
}
