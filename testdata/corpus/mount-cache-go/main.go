package main

import "fmt"

func main() {
	fmt.Println("hello from a Go program built from bind-mounted sources")
}
