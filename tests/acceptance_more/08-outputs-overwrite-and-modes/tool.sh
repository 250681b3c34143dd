#!/bin/sh
echo tool-ran-remotely
