#!/bin/sh
echo chmod-came-back
