package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"
)

// runHashPassword prints the bcrypt hash of a password. On a terminal it
// asks twice without echo; otherwise it reads one line on stdin
// (`echo 'pw' | mjrelay hash-password`).
func runHashPassword(stdin io.Reader, stdout, stderr io.Writer) int {
	pw, err := readPassword(stdin, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "mjrelay hash-password:", err)
		return 1
	}
	if !asciiPassword(pw) {
		fmt.Fprintln(stderr, "mjrelay hash-password: warning: Odoo (Python smtplib) can only send ASCII passwords")
	}
	h, err := hashPassword(pw)
	if err != nil {
		fmt.Fprintln(stderr, "mjrelay hash-password:", err)
		return 1
	}
	fmt.Fprintln(stdout, h)
	return 0
}

// readPassword reads the password: from a terminal without echo, twice,
// the two must match; from anything else, the first line.
func readPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fd := int(f.Fd())
		var got [2]string
		for i, prompt := range []string{"Password: ", "Password again: "} {
			fmt.Fprint(stderr, prompt)
			b, err := term.ReadPassword(fd)
			fmt.Fprintln(stderr)
			if err != nil {
				return "", err
			}
			got[i] = string(b)
		}
		if got[0] != got[1] {
			return "", errors.New("the two passwords differ")
		}
		return got[0], nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// hashPassword checks a password and returns its bcrypt hash.
func hashPassword(pw string) (string, error) {
	switch {
	case pw == "":
		return "", errors.New("empty password")
	case len(pw) > 72:
		return "", errors.New("bcrypt takes at most 72 bytes")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	return string(h), err
}

// asciiPassword reports whether Python's smtplib, and so Odoo, can send pw
// (it encodes AUTH credentials as ASCII).
func asciiPassword(pw string) bool {
	for _, r := range pw {
		if r > 0x7e || r < 0x20 {
			return false
		}
	}
	return true
}
