#!/bin/sh
echo same
