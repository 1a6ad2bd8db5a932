// Command addclient calls addsvc over HTTP the way go-kit's addtransport.NewHTTPClient
// does, with the standard library only: request and response structs exactly as
// go-kit's addendpoint types (untagged request fields, so Go sends {"A":1,"B":2}),
// the body written by json.Encoder into a request built with a nil body (so no
// Content-Type and a chunked body, as go-kit's client sends), a non-200 answer
// turned into errors.New(r.Status) (decodeHTTPSumResponse), and the reply decoded
// by encoding/json. For errors it also reads the body as go-kit's errorDecoder
// would ({"error": "..."}). One JSON line per call on stdout.
//
// Usage: addclient http://HOST:PORT
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
)

type SumRequest struct {
	A, B int
}

type SumResponse struct {
	V   int   `json:"v"`
	Err error `json:"-"`
}

type ConcatRequest struct {
	A, B string
}

type ConcatResponse struct {
	V   string `json:"v"`
	Err error  `json:"-"`
}

// Mult is lokit's addition to addsvc; typed the go-kit way.
type MultRequest struct {
	A, B float64
}

type MultResponse struct {
	V   float64 `json:"v"`
	Err error   `json:"-"`
}

type errorWrapper struct {
	Error string `json:"error"`
}

type result struct {
	Call      string      `json:"call"`
	Value     interface{} `json:"value"`
	Error     string      `json:"error"`
	BodyError string      `json:"body_error"`
	Status    int         `json:"status"`
}

func call(base, path string, request, response interface{}) (int, string, error) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(request); err != nil {
		return 0, "", err
	}
	req, err := http.NewRequest("POST", base+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Body = io.NopCloser(&buf)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var w errorWrapper
		if err := json.NewDecoder(resp.Body).Decode(&w); err != nil {
			w.Error = "undecodable error body: " + err.Error()
		}
		return resp.StatusCode, w.Error, errors.New(resp.Status)
	}
	return resp.StatusCode, "", json.NewDecoder(resp.Body).Decode(response)
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: addclient http://HOST:PORT")
		os.Exit(2)
	}
	base := os.Args[1]
	out := json.NewEncoder(os.Stdout)
	emit := func(name string, value interface{}, status int, bodyErr string, err error) {
		r := result{Call: name, Value: value, Status: status, BodyError: bodyErr}
		if err != nil {
			r.Value = nil
			r.Error = err.Error()
		}
		out.Encode(r)
	}
	sums := [][2]int{{1, 2}, {0, 0}, {2147483647, 1}, {-2147483648, -1}, {-5, 3}}
	for _, s := range sums {
		var resp SumResponse
		status, bodyErr, err := call(base, "/sum", SumRequest{A: s[0], B: s[1]}, &resp)
		emit(fmt.Sprintf("Sum(%d, %d)", s[0], s[1]), resp.V, status, bodyErr, err)
	}
	concats := [][2]string{{"1", "2"}, {"abcdef", "ghijk"}, {"tea", "pot"}, {"", ""}}
	for _, c := range concats {
		var resp ConcatResponse
		status, bodyErr, err := call(base, "/concat", ConcatRequest{A: c[0], B: c[1]}, &resp)
		emit(fmt.Sprintf("Concat(%q, %q)", c[0], c[1]), resp.V, status, bodyErr, err)
	}
	mults := [][2]float64{{1.5, 4}, {1e308, 10}}
	for _, m := range mults {
		var resp MultResponse
		status, bodyErr, err := call(base, "/mult", MultRequest{A: m[0], B: m[1]}, &resp)
		emit(fmt.Sprintf("Mult(%g, %g)", m[0], m[1]), resp.V, status, bodyErr, err)
	}
}
